//! Container verbs that are one or two API calls each: inspect, logs, stop, kill,
//! restart, pause, unpause, wait, rm, top, exec, version.

use std::io::Write;

use hyper::Method;
use serde_json::{json, Value};

use super::api::{enc, Api};
use super::session::{self, Opts};
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Print one value per object: a Go-template-like path such as `{{.State.Status}}`.
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow the output.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (`all` for everything).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    timestamps: bool,
    container: String,
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing.
    #[arg(short, long, default_value_t = 10)]
    time: i64,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal to send.
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Kill and remove a running container.
    #[arg(short, long)]
    force: bool,
    /// Remove its anonymous volumes too.
    #[arg(short, long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    container: String,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Keep stdin open.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// Run in the background.
    #[arg(short, long)]
    detach: bool,
    /// Set environment variables.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// User (`name|uid[:group|gid]`).
    #[arg(short, long)]
    user: Option<String>,
    /// Every capability, no seccomp filter.
    #[arg(long)]
    privileged: bool,
    /// The container, then the command and its arguments.
    #[arg(required = true, trailing_var_arg = true, num_args = 2.., value_name = "CONTAINER COMMAND [ARG...]")]
    container_and_command: Vec<String>,
}

pub async fn inspect(api: &Api, a: InspectArgs) -> Result<i32, Error> {
    let mut found = Vec::new();
    let mut failed = false;
    for name in &a.names {
        let c = api
            .call(
                Method::GET,
                &format!("/containers/{}/json", enc(name)),
                None,
            )
            .await;
        let v = match c {
            Ok(v) => Ok(v),
            Err(Error::Api { status: 404, .. }) => api
                .call(Method::GET, &format!("/images/{name}/json"), None)
                .await
                .map_err(|_| Error::Api {
                    status: 404,
                    message: format!("No such object: {name}"),
                }),
            Err(e) => Err(e),
        };
        match v {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    match &a.format {
        Some(f) => print!("{}", super::format::render_each(f, &found)?),
        None => println!(
            "{}",
            serde_json::to_string_pretty(&found).unwrap_or_default()
        ),
    }
    Ok(i32::from(failed))
}

pub async fn logs(api: &Api, a: LogsArgs) -> Result<i32, Error> {
    let info = api
        .call(
            Method::GET,
            &format!("/containers/{}/json", enc(&a.container)),
            None,
        )
        .await?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let id = info["Id"].as_str().unwrap_or_default();
    let path = format!(
        "/containers/{id}/logs?stdout=1&stderr=1&follow={}&timestamps={}&tail={}",
        u8::from(a.follow),
        u8::from(a.timestamps),
        enc(&a.tail)
    );
    let resp = api.stream(Method::GET, &path).await?;
    super::api::print_body(resp, tty).await?;
    Ok(0)
}

/// Runs one POST per container, printing each name as Docker does.
pub(super) async fn each(
    api: &Api,
    names: &[String],
    path: impl Fn(&str) -> String,
) -> Result<i32, Error> {
    let mut failed = false;
    for name in names {
        match api.call_status(Method::POST, &path(&enc(name))).await {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

pub async fn stop(api: &Api, a: StopArgs) -> Result<i32, Error> {
    each(api, &a.containers, |n| {
        format!("/containers/{n}/stop?t={}", a.time)
    })
    .await
}

pub async fn restart(api: &Api, a: StopArgs) -> Result<i32, Error> {
    each(api, &a.containers, |n| {
        format!("/containers/{n}/restart?t={}", a.time)
    })
    .await
}

pub async fn kill(api: &Api, a: KillArgs) -> Result<i32, Error> {
    let sig = enc(&a.signal);
    each(api, &a.containers, |n| {
        format!("/containers/{n}/kill?signal={sig}")
    })
    .await
}

pub async fn pause(api: &Api, a: NamesArgs, paused: bool) -> Result<i32, Error> {
    let verb = if paused { "pause" } else { "unpause" };
    each(api, &a.containers, |n| format!("/containers/{n}/{verb}")).await
}

pub async fn wait(api: &Api, a: NamesArgs) -> Result<i32, Error> {
    let mut failed = false;
    for name in &a.containers {
        let resp = api
            .stream(Method::POST, &format!("/containers/{}/wait", enc(name)))
            .await;
        let result = match resp {
            Ok(r) => super::api::collect(r).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(bytes) => {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                println!("{}", v["StatusCode"]);
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

pub async fn rm(api: &Api, a: RmArgs) -> Result<i32, Error> {
    let query = format!("?force={}&v={}", u8::from(a.force), u8::from(a.volumes));
    delete_each(api, "/containers", &a.containers, &query).await
}

/// `DELETE {prefix}/{name}{query}` for each name: prints the names removed, reports the
/// others; 1 when any failed.
pub(super) async fn delete_each(
    api: &Api,
    prefix: &str,
    names: &[String],
    query: &str,
) -> Result<i32, Error> {
    let mut failed = false;
    for name in names {
        let path = format!("{prefix}/{}{query}", enc(name));
        match api.call(Method::DELETE, &path, None).await {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

pub async fn top(api: &Api, a: TopArgs) -> Result<i32, Error> {
    let v = api
        .call(
            Method::GET,
            &format!("/containers/{}/top", enc(&a.container)),
            None,
        )
        .await?;
    let titles: Vec<String> = super::containers::strings(&v["Titles"]);
    let rows: Vec<Vec<String>> = v["Processes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(strings)
        .collect();
    let mut widths: Vec<usize> = titles.iter().map(String::len).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = std::io::stdout().lock();
    for r in std::iter::once(&titles).chain(rows.iter()) {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| match i + 1 == r.len() {
                true => c.clone(),
                false => format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)),
            })
            .collect();
        writeln!(out, "{}", cells.join("   "))?;
    }
    Ok(0)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            s.as_str()
                .map(String::from)
                .unwrap_or_else(|| s.to_string())
        })
        .collect()
}

pub async fn exec(api: &Api, a: ExecArgs) -> Result<i32, Error> {
    let (container, cmd) = a
        .container_and_command
        .split_first()
        .ok_or_else(|| Error::Usage("a container and a command are required".into()))?;
    let console = a.tty.then(super::terminal::size);
    let body = json!({
        "Cmd": cmd,
        "Env": a.env,
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "User": a.user.clone().unwrap_or_default(),
        "Tty": a.tty,
        "AttachStdin": a.interactive && !a.detach,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Privileged": a.privileged,
        "ConsoleSize": console.map(|s| [s.rows, s.cols]),
    });
    let created = api
        .call(
            Method::POST,
            &format!("/containers/{}/exec", enc(container)),
            Some(&body),
        )
        .await?;
    let id = created["Id"].as_str().unwrap_or_default().to_string();
    let start = json!({"Detach": a.detach, "Tty": a.tty});
    if a.detach {
        api.call(Method::POST, &format!("/exec/{id}/start"), Some(&start))
            .await?;
        return Ok(0);
    }
    let io = match api.hijack(&format!("/exec/{id}/start"), Some(&start)).await {
        Ok(io) => io,
        Err(Error::Api {
            status: 400,
            message,
        }) => {
            let code = if message.contains("not found") {
                127
            } else {
                126
            };
            return Err(Error::Exec { code, message });
        }
        Err(e) => return Err(e),
    };
    session::run(
        api,
        io,
        Opts {
            tty: a.tty,
            stdin: a.interactive,
            resize_path: Some(format!("/exec/{id}/resize")),
            kill_path: None,
        },
    )
    .await?;
    let info = api
        .call(Method::GET, &format!("/exec/{id}/json"), None)
        .await?;
    if a.tty && info["Running"].as_bool() == Some(true) {
        return Ok(0); // detached with the detach keys
    }
    Ok(info["ExitCode"].as_i64().unwrap_or(126) as i32)
}

pub async fn version(api: Option<&Api>) -> Result<i32, Error> {
    println!(
        "Client:\n Version:     {}\n API version: {}",
        env!("CARGO_PKG_VERSION"),
        crate::machine::API_VERSION
    );
    if let Some(api) = api {
        let v = api.call(Method::GET, "/version", None).await?;
        println!(
            "\nServer: berthd\n Version:     {}\n API version: {} (minimum {})\n Kernel:      {}",
            v["Version"].as_str().unwrap_or_default(),
            v["ApiVersion"].as_str().unwrap_or_default(),
            v["MinAPIVersion"].as_str().unwrap_or_default(),
            v["KernelVersion"].as_str().unwrap_or_default()
        );
    }
    Ok(0)
}
