//! `berth network create|ls|rm|inspect` and `berth port`: clients of the daemon's
//! `/networks` and container inspect.

use hyper::Method;
use serde_json::{json, Value};

use super::api::{enc, Api};
use super::format::{self, Listing};
use crate::error::Error;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a bridge network; containers on it resolve each other by name.
    Create {
        /// Subnet in CIDR form (default: the next free 172.18-31.0.0/16).
        #[arg(long)]
        subnet: Option<String>,
        /// The gateway (default: the subnet's first address).
        #[arg(long)]
        gateway: Option<String>,
        /// Driver; only `bridge`.
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Set a label (`KEY=VALUE`).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        label: Vec<String>,
        name: String,
    },
    /// List networks.
    #[command(visible_alias = "list")]
    Ls {
        /// Only ids.
        #[arg(short, long)]
        quiet: bool,
        /// Filter (`name=`, `id=`, `driver=`, `label=`, `type=custom|builtin`, `dangling=true`).
        #[arg(short, long, value_name = "KEY=VALUE")]
        filter: Vec<String>,
        /// Do not truncate ids.
        #[arg(long)]
        no_trunc: bool,
        /// `table`, `json`, or a Go template (`{{.ID}}: {{.Name}}`).
        #[arg(long)]
        format: Option<String>,
    },
    /// Remove networks (refused while a container uses one).
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show networks as JSON.
    Inspect {
        /// A Go template such as `{{.IPAM.Config}}`, or `json`.
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub async fn run(api: &Api, cmd: Command) -> Result<i32, Error> {
    match cmd {
        Command::Create {
            subnet,
            gateway,
            driver,
            label,
            name,
        } => {
            let labels: serde_json::Map<String, Value> = label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), Value::from(v))
                })
                .collect();
            let mut ipam = json!({});
            if subnet.is_some() || gateway.is_some() {
                ipam = json!({"Subnet": subnet.unwrap_or_default(), "Gateway": gateway.unwrap_or_default()});
            }
            let body = json!({
                "Name": name, "Driver": driver, "Labels": labels,
                "IPAM": {"Driver": "default", "Config": if ipam == json!({}) { json!([]) } else { json!([ipam]) }},
            });
            let v = api
                .call(Method::POST, "/networks/create", Some(&body))
                .await?;
            println!("{}", v["Id"].as_str().unwrap_or_default());
            Ok(0)
        }
        Command::Ls {
            quiet,
            filter,
            no_trunc,
            format,
        } => {
            let path = format!("/networks{}", super::api::filters_query(&filter)?);
            let list = api.call(Method::GET, &path, None).await?;
            let mut list = list.as_array().cloned().unwrap_or_default();
            list.sort_by(|a, b| {
                format::natural_cmp(
                    a["Name"].as_str().unwrap_or_default(),
                    b["Name"].as_str().unwrap_or_default(),
                )
            });
            let rows: Vec<_> = list.iter().map(|n| row(n, !no_trunc)).collect();
            let out = match quiet {
                true => rows
                    .iter()
                    .map(|r| format!("{}\n", r["ID"].as_str().unwrap_or_default()))
                    .collect(),
                false => format::render(format.as_deref(), &LISTING, &rows)?,
            };
            print!("{out}");
            Ok(0)
        }
        Command::Rm { names } => {
            let mut failed = false;
            for name in names {
                match api
                    .call_status(Method::DELETE, &format!("/networks/{}", enc(&name)))
                    .await
                {
                    Ok(_) => println!("{name}"),
                    Err(e) => {
                        eprintln!("Error response from daemon: {e}");
                        failed = true;
                    }
                }
            }
            Ok(i32::from(failed))
        }
        Command::Inspect { format, names } => {
            let mut found = Vec::new();
            let mut failed = false;
            for name in names {
                match api
                    .call(Method::GET, &format!("/networks/{}", enc(&name)), None)
                    .await
                {
                    Ok(v) => found.push(v),
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            match format {
                Some(f) => print!("{}", format::render_each(&f, &found)?),
                None => println!(
                    "{}",
                    serde_json::to_string_pretty(&found).unwrap_or_default()
                ),
            }
            Ok(i32::from(failed))
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct PortArgs {
    container: String,
    /// Only this port: `PORT[/tcp|/udp]`.
    port: Option<String>,
}

/// `berth port NAME [PORT]`: `8080/tcp -> 127.0.0.1:18080` lines.
pub async fn port(api: &Api, a: PortArgs) -> Result<i32, Error> {
    let v = api
        .call(
            Method::GET,
            &format!("/containers/{}/json", enc(&a.container)),
            None,
        )
        .await?;
    let lines = port_lines(&v["NetworkSettings"]["Ports"]);
    let wanted = a.port.map(|p| {
        if p.contains('/') {
            p
        } else {
            format!("{p}/tcp")
        }
    });
    let mut shown = 0;
    for (key, line) in lines {
        match &wanted {
            Some(w) if *w != key => {}
            Some(_) => {
                println!("{}", line.rsplit(" -> ").next().unwrap_or_default());
                shown += 1;
            }
            None => {
                println!("{line}");
                shown += 1;
            }
        }
    }
    if let (Some(w), 0) = (&wanted, shown) {
        return Err(Error::Api {
            status: 404,
            message: format!("No public port '{w}' published for {}", a.container),
        });
    }
    Ok(0)
}

/// (key, `8080/tcp -> 127.0.0.1:18080`) for each binding, sorted by port.
fn port_lines(ports: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, bindings) in ports.as_object().into_iter().flatten() {
        for b in bindings.as_array().into_iter().flatten() {
            let ip = b["HostIp"].as_str().unwrap_or_default();
            let port = b["HostPort"].as_str().unwrap_or_default();
            out.push((key.clone(), format!("{key} -> {ip}:{port}")));
        }
    }
    out.sort_by_key(|(k, _)| k.split('/').next().and_then(|p| p.parse::<u16>().ok()));
    out
}

/// Docker's network fields, with the headers `table` prints for them.
const LISTING: Listing = Listing {
    default: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    headers: &[
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("Labels", "LABELS"),
        ("CreatedAt", "CREATED AT"),
    ],
};

/// One network as the docker CLI's network context shows it: every field a string.
fn row(n: &Value, trunc: bool) -> serde_json::Map<String, Value> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let id = s(&n["Id"]);
    let labels = super::format::labels(&n["Labels"]);
    let created = crate::image::time::parse_rfc3339(&s(&n["Created"])).unwrap_or(0);
    super::format::row([
        (
            "ID",
            if trunc {
                id.chars().take(12).collect()
            } else {
                id
            },
        ),
        ("Name", s(&n["Name"])),
        ("Driver", s(&n["Driver"])),
        ("Scope", s(&n["Scope"])),
        (
            "IPv6",
            n["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
        ),
        (
            "Internal",
            n["Internal"].as_bool().unwrap_or(false).to_string(),
        ),
        ("Labels", labels),
        ("CreatedAt", crate::image::time::go_time_string(created)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lines_follow_docker() {
        let ports = json!({"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}],
                           "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "15353"}]});
        let lines: Vec<String> = port_lines(&ports).into_iter().map(|(_, l)| l).collect();
        assert_eq!(
            lines,
            ["53/udp -> 127.0.0.1:15353", "8080/tcp -> 127.0.0.1:18080"]
        );
    }
}
