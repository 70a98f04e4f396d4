//! `berth volume create|ls|rm|inspect`, and the `-v`/`--mount` flags of `run` and
//! `create` turned into Docker's create body (`HostConfig.Binds`, `HostConfig.Mounts`,
//! `Volumes`), as the docker CLI sends them. The daemon checks them.

use hyper::Method;
use serde_json::{json, Map, Value};

use super::api::{enc, Api};
use crate::Error;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a volume (a random name when none is given); prints its name.
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Remove volumes (refused while a container, running or not, uses one).
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Show volumes as JSON.
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    name: Option<String>,
    /// Set a label (`KEY=VALUE`).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only the names.
    #[arg(short, long)]
    quiet: bool,
    /// Filter (`dangling=true`, `name=NAME`, `label=KEY[=VALUE]`).
    #[arg(short, long, value_name = "KEY=VALUE")]
    filter: Vec<String>,
    /// `table`, `json`, or a Go template (`{{.Name}}\t{{.Mountpoint}}`).
    #[arg(long)]
    format: Option<String>,
}

/// Docker's volume fields, with the headers `table` prints for them.
const LISTING: super::format::Listing = super::format::Listing {
    default: "table {{.Driver}}\t{{.Name}}",
    headers: &[
        ("Name", "VOLUME NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("Mountpoint", "MOUNTPOINT"),
        ("Labels", "LABELS"),
        ("Links", "LINKS"),
        ("Size", "SIZE"),
        ("Availability", "AVAILABILITY"),
        ("Group", "GROUP"),
        ("Status", "STATUS"),
    ],
};

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// No error for volumes that do not exist.
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A Go template such as `{{.Mountpoint}}`, or `json`.
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

pub async fn run(api: &Api, cmd: Command) -> Result<i32, Error> {
    match cmd {
        Command::Create(a) => {
            let labels: Map<String, Value> = a.label.iter().map(|l| key_value(l)).collect();
            let body =
                json!({"Name": a.name.unwrap_or_default(), "Driver": "local", "Labels": labels});
            let v = api
                .call(Method::POST, "/volumes/create", Some(&body))
                .await?;
            println!("{}", v["Name"].as_str().unwrap_or_default());
            Ok(0)
        }
        Command::Ls(a) => ls(api, a).await,
        Command::Rm(a) => {
            let query = format!("?force={}", u8::from(a.force));
            super::containers::delete_each(api, "/volumes", &a.names, &query).await
        }
        Command::Inspect(a) => {
            let mut found = Vec::new();
            let mut failed = false;
            for name in &a.names {
                match api
                    .call(Method::GET, &format!("/volumes/{}", enc(name)), None)
                    .await
                {
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
    }
}

/// One volume as the docker CLI's volume context shows it: every field a string
/// (`N/A` where berth has no figure, as Docker prints for a local volume).
fn row(v: &Value) -> Map<String, Value> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let labels = super::format::labels(&v["Labels"]);
    let na = || "N/A".to_string();
    super::format::row([
        ("Name", s(&v["Name"])),
        ("Driver", s(&v["Driver"])),
        ("Scope", s(&v["Scope"])),
        ("Mountpoint", s(&v["Mountpoint"])),
        ("Labels", labels),
        ("Links", na()),
        ("Size", na()),
        ("Availability", na()),
        ("Group", na()),
        ("Status", na()),
    ])
}

fn key_value(l: &str) -> (String, Value) {
    match l.split_once('=') {
        Some((k, v)) => (k.to_string(), Value::from(v)),
        None => (l.to_string(), Value::from("")),
    }
}

async fn ls(api: &Api, a: LsArgs) -> Result<i32, Error> {
    let path = format!("/volumes{}", super::api::filters_query(&a.filter)?);
    let v = api.call(Method::GET, &path, None).await?;
    let mut volumes = v["Volumes"].as_array().cloned().unwrap_or_default();
    // The docker CLI lists volumes by name, in natural order.
    volumes.sort_by(|a, b| {
        super::format::natural_cmp(
            a["Name"].as_str().unwrap_or_default(),
            b["Name"].as_str().unwrap_or_default(),
        )
    });
    if a.quiet {
        for v in &volumes {
            println!("{}", v["Name"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let rows: Vec<_> = volumes.iter().map(row).collect();
    print!(
        "{}",
        super::format::render(a.format.as_deref(), &LISTING, &rows)?
    );
    Ok(0)
}

/// `-v` and `--mount` values as the create body's `HostConfig.Binds`, `HostConfig.Mounts`
/// and `Volumes` (anonymous volumes). Relative sources starting with `.` are made
/// absolute against the current directory, as the docker CLI does; other sources
/// without a `/` are volume names, and the daemon judges them.
pub fn create_fields(
    volumes: &[String],
    mounts: &[String],
) -> Result<(Value, Value, Value), Error> {
    let mut binds = Vec::new();
    let mut anonymous = Map::new();
    for v in volumes {
        match v.split_once(':') {
            None => {
                anonymous.insert(v.clone(), json!({}));
            }
            Some((src, rest)) => binds.push(format!("{}:{rest}", absolute_if_dotted(src)?)),
        }
    }
    let mounts = mounts
        .iter()
        .map(|m| parse_mount_flag(m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((json!(binds), json!(mounts), Value::Object(anonymous)))
}

fn absolute_if_dotted(src: &str) -> Result<String, Error> {
    if src == "." || src.starts_with("./") || src == ".." || src.starts_with("../") {
        let cwd = std::env::current_dir()?;
        return Ok(cwd.join(src).to_string_lossy().into_owned());
    }
    Ok(src.to_string())
}

/// `--mount type=bind,source=/a,target=/b,readonly`.
fn parse_mount_flag(spec: &str) -> Result<Value, Error> {
    let bad = |why: String| Error::Usage(format!("--mount {spec:?}: {why}"));
    let mut kind = "volume".to_string();
    let (mut source, mut target) = (String::new(), String::new());
    let mut read_only = false;
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        let need = |v: Option<&str>| {
            v.map(String::from)
                .ok_or_else(|| bad(format!("{key} needs a value")))
        };
        match key {
            "type" => kind = need(value)?,
            "source" | "src" => source = need(value)?,
            "target" | "destination" | "dst" => target = need(value)?,
            "readonly" | "ro" => {
                read_only = match value {
                    None | Some("1" | "true") => true,
                    Some("0" | "false") => false,
                    Some(v) => return Err(bad(format!("invalid value for {key}: {v}"))),
                }
            }
            "consistency" => {}
            other => return Err(bad(format!("unexpected key '{other}'"))),
        }
    }
    if target.is_empty() {
        return Err(bad("target is required".into()));
    }
    if kind == "bind" {
        source = absolute_if_dotted(&source)?;
    }
    Ok(json!({"Type": kind, "Source": source, "Target": target, "ReadOnly": read_only}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_binds_mounts_and_anonymous_volumes() {
        let (binds, mounts, anon) = create_fields(
            &["/srv:/data:ro".into(), "vol1:/v".into(), "/scratch".into()],
            &[
                "type=bind,src=/a,dst=/b,readonly".into(),
                "target=/c".into(),
            ],
        )
        .unwrap();
        assert_eq!(binds, json!(["/srv:/data:ro", "vol1:/v"]));
        assert_eq!(
            mounts,
            json!([
                {"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true},
                {"Type": "volume", "Source": "", "Target": "/c", "ReadOnly": false}
            ])
        );
        assert_eq!(anon, json!({"/scratch": {}}));
        let (binds, ..) = create_fields(&["./here:/h".into()], &[]).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            binds[0].as_str().unwrap(),
            format!("{}:/h", cwd.join("./here").display())
        );
        let (binds, ..) = create_fields(&["relative/path:/x".into()], &[]).unwrap();
        assert_eq!(binds, json!(["relative/path:/x"]));
    }

    #[test]
    fn bad_mount_flags() {
        for bad in [
            "type=bind,source=/a",
            "type=bind,target=/b,bogus=1",
            "target=/b,readonly=maybe",
            "type,target=/b",
        ] {
            assert!(parse_mount_flag(bad).is_err(), "{bad}");
        }
    }
}
