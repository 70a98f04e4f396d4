//! Container verbs that are one or two API calls each: ps, inspect, logs, stop, kill,
//! restart, pause, unpause, wait, rm, top, stats, exec, version.

use std::io::Write;
use std::time::SystemTime;

use hyper::Method;
use serde_json::{json, Value};

use super::api::{enc, Api};
use super::session::{self, Opts};
use crate::image::time::human_duration;
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default: only running ones).
    #[arg(short, long)]
    all: bool,
    /// Only show ids.
    #[arg(short, long)]
    quiet: bool,
    /// Filter (`name=web`, `id=abc`, `status=exited`).
    #[arg(short, long)]
    filter: Vec<String>,
    /// Do not truncate ids and commands.
    #[arg(long)]
    no_trunc: bool,
}

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
pub struct StatsArgs {
    /// Print one sample and exit.
    #[arg(long)]
    no_stream: bool,
    /// Containers (default: every running one).
    containers: Vec<String>,
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

pub async fn ps(api: &Api, a: PsArgs) -> Result<i32, Error> {
    let mut filters = serde_json::Map::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("bad filter {f:?}: expected KEY=VALUE")))?;
        let entry = filters.entry(k.to_string()).or_insert_with(|| json!({}));
        if let Some(o) = entry.as_object_mut() {
            o.insert(v.to_string(), Value::Bool(true));
        }
    }
    let path = format!(
        "/containers/json?all={}&filters={}",
        u8::from(a.all),
        enc(&Value::Object(filters).to_string())
    );
    let list = api.call(Method::GET, &path, None).await?;
    let mut out = std::io::stdout().lock();
    let items = list.as_array().cloned().unwrap_or_default();
    if a.quiet {
        for c in &items {
            let id = c["Id"].as_str().unwrap_or_default();
            writeln!(
                out,
                "{}",
                if a.no_trunc {
                    id
                } else {
                    &id[..id.len().min(12)]
                }
            )?;
        }
        return Ok(0);
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let rows: Vec<[String; 7]> = items
        .iter()
        .map(|c| {
            let id = c["Id"].as_str().unwrap_or_default();
            let cmd = c["Command"].as_str().unwrap_or_default();
            let cmd = match a.no_trunc || cmd.chars().count() <= 20 {
                true => format!("\"{cmd}\""),
                false => format!("\"{}…\"", cmd.chars().take(19).collect::<String>()),
            };
            let created = c["Created"].as_i64().unwrap_or(0);
            [
                if a.no_trunc {
                    id.to_string()
                } else {
                    id[..id.len().min(12)].to_string()
                },
                c["Image"].as_str().unwrap_or_default().to_string(),
                cmd,
                format!("{} ago", human_duration(now - created)),
                c["Status"].as_str().unwrap_or_default().to_string(),
                ports_column(&c["Ports"]),
                c["Names"][0]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
            ]
        })
        .collect();
    let header = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    print_table(&mut out, &header, &rows)?;
    Ok(0)
}

/// Docker's PORTS column: `127.0.0.1:18080->8080/tcp, 127.0.0.1:15353->53/udp`.
fn ports_column(ports: &Value) -> String {
    ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let private = format!(
                "{}/{}",
                p["PrivatePort"].as_u64().unwrap_or(0),
                p["Type"].as_str().unwrap_or("tcp")
            );
            match p["PublicPort"].as_u64() {
                Some(public) => format!(
                    "{}:{public}->{private}",
                    p["IP"].as_str().unwrap_or_default()
                ),
                None => private,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn print_table<const N: usize>(
    out: &mut impl Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
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
        Some(f) => {
            for v in &found {
                println!("{}", render_format(f, v));
            }
        }
        None => println!(
            "{}",
            serde_json::to_string_pretty(&found).unwrap_or_default()
        ),
    }
    Ok(i32::from(failed))
}

/// A tiny subset of Go templates: `{{.A.B}}` paths and literal text; `{{json .A}}`.
pub fn render_format(format: &str, v: &Value) -> String {
    let mut out = String::new();
    let mut rest = format;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = rest[start + 2..start + end].trim();
        let (json_out, path) = match expr.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, expr),
        };
        let mut cur = v;
        for key in path
            .trim_start_matches('.')
            .split('.')
            .filter(|k| !k.is_empty())
        {
            cur = &cur[key];
        }
        match (json_out, cur) {
            (false, Value::String(s)) => out.push_str(s),
            (false, Value::Null) => out.push_str("<no value>"),
            (_, other) => out.push_str(&other.to_string()),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
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

/// One row of `docker stats` from a stats object.
fn stats_row(v: &Value) -> [String; 6] {
    let n = |v: &Value| v.as_f64().unwrap_or(0.0);
    let cpu_delta = n(&v["cpu_stats"]["cpu_usage"]["total_usage"])
        - n(&v["precpu_stats"]["cpu_usage"]["total_usage"]);
    let sys_delta =
        n(&v["cpu_stats"]["system_cpu_usage"]) - n(&v["precpu_stats"]["system_cpu_usage"]);
    let cpus = n(&v["cpu_stats"]["online_cpus"]).max(1.0);
    let cpu = match sys_delta > 0.0 && cpu_delta > 0.0 {
        true => cpu_delta / sys_delta * cpus * 100.0,
        false => 0.0,
    };
    let mem =
        (n(&v["memory_stats"]["usage"]) - n(&v["memory_stats"]["stats"]["inactive_file"])).max(0.0);
    let limit = n(&v["memory_stats"]["limit"]);
    let pct = if limit > 0.0 {
        mem / limit * 100.0
    } else {
        0.0
    };
    let id = v["id"].as_str().unwrap_or_default();
    [
        id[..id.len().min(12)].to_string(),
        v["name"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        format!("{cpu:.2}%"),
        format!("{} / {}", human_bytes(mem), human_bytes(limit)),
        format!("{pct:.2}%"),
        v["pids_stats"]["current"].to_string(),
    ]
}

/// Binary units as `docker stats` prints them (`1.5MiB`).
pub fn human_bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.4}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
        + units[i]
}

pub async fn stats(api: &Api, a: StatsArgs) -> Result<i32, Error> {
    loop {
        let names = match a.containers.is_empty() {
            true => api
                .call(Method::GET, "/containers/json", None)
                .await?
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["Id"].as_str().map(String::from))
                .collect(),
            false => a.containers.clone(),
        };
        let mut rows = Vec::new();
        for name in &names {
            let v = api
                .call(
                    Method::GET,
                    &format!("/containers/{}/stats?stream=false", enc(name)),
                    None,
                )
                .await?;
            rows.push(stats_row(&v));
        }
        let mut out = std::io::stdout().lock();
        if !a.no_stream {
            write!(out, "\x1b[2J\x1b[H")?;
        }
        let header = [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "PIDS",
        ];
        print_table(&mut out, &header, &rows)?;
        out.flush()?;
        if a.no_stream {
            return Ok(0);
        }
        drop(out);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_render_paths() {
        let v = json!({"State": {"Status": "exited", "ExitCode": 3}, "Name": "/web"});
        assert_eq!(
            render_format("{{.State.Status}} {{.State.ExitCode}}", &v),
            "exited 3"
        );
        assert_eq!(render_format("{{json .State}}", &v), v["State"].to_string());
        assert_eq!(render_format("{{.Nope}}", &v), "<no value>");
    }

    #[test]
    fn stats_rows_compute_cpu_and_memory() {
        let v = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 200}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 2097152, "limit": 4194304, "stats": {"inactive_file": 1048576}},
            "pids_stats": {"current": 3}
        });
        let r = stats_row(&v);
        assert_eq!(r[0], "0123456789ab");
        assert_eq!(r[2], "20.00%");
        assert_eq!(r[3], "1MiB / 4MiB");
        assert_eq!(r[4], "25.00%");
        assert_eq!(r[5], "3");
    }
}
