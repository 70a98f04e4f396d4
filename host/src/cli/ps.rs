//! `berth ps` (`container ls`): the container list in the docker CLI's shapes, with
//! `--format` over Docker's field names (`.ID`, `.Names`, `.Status`, ...).

use std::time::SystemTime;

use hyper::Method;
use serde_json::{Map, Value};

use super::api::Api;
use super::format::{self, Listing};
use crate::image::time::{go_time_string, human_duration};
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default: only running ones).
    #[arg(short, long)]
    all: bool,
    /// Only show ids.
    #[arg(short, long)]
    quiet: bool,
    /// Filter (`name=web`, `id=abc`, `status=exited`, `label=k=v`, ...).
    #[arg(short, long)]
    filter: Vec<String>,
    /// Do not truncate ids and commands.
    #[arg(long)]
    no_trunc: bool,
    /// `table`, `json`, or a Go template (`{{.ID}}\t{{.Names}}`, `table {{.Names}}`).
    #[arg(long)]
    format: Option<String>,
}

/// Docker's container fields, with the headers `table` prints for them.
pub const LISTING: Listing = Listing {
    default: "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
    headers: &[
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Ports", "PORTS"),
        ("State", "STATE"),
        ("Status", "STATUS"),
        ("Size", "SIZE"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("Networks", "NETWORKS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("Platform", "PLATFORM"),
    ],
};

pub async fn ps(api: &Api, a: PsArgs) -> Result<i32, Error> {
    let q = super::api::filters_query(&a.filter)?;
    let sep = if q.is_empty() { '?' } else { '&' };
    let path = format!("/containers/json{q}{sep}all={}", u8::from(a.all));
    let list = api.call(Method::GET, &path, None).await?;
    let items = list.as_array().cloned().unwrap_or_default();
    let trunc = !a.no_trunc;
    let out = match a.quiet {
        true => items
            .iter()
            .map(|c| {
                format!(
                    "{}\n",
                    short_id(c["Id"].as_str().unwrap_or_default(), trunc)
                )
            })
            .collect(),
        false => {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let rows: Vec<_> = items.iter().map(|c| row(c, now, trunc)).collect();
            format::render(a.format.as_deref(), &LISTING, &rows)?
        }
    };
    print!("{out}");
    Ok(0)
}

fn short_id(id: &str, trunc: bool) -> &str {
    match trunc {
        true => &id[..id.len().min(12)],
        false => id,
    }
}

/// One container as the docker CLI's `ContainerContext` shows it: every field a string.
pub fn row(c: &Value, now: i64, trunc: bool) -> Map<String, Value> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let names: Vec<String> = c["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    // Truncated, only the container's own name; links (`other/alias`) are left out.
    let names = match trunc {
        true => names
            .into_iter()
            .find(|n| !n.contains('/'))
            .unwrap_or_default(),
        false => names.join(","),
    };
    let image = match s(&c["Image"]) {
        i if i.is_empty() => "<no image>".to_string(),
        i if trunc && i.starts_with("sha256:") => i[7..].chars().take(12).collect(),
        i => i,
    };
    let command = s(&c["Command"]);
    let command = match trunc && command.chars().count() > 20 {
        true => format!("{}…", command.chars().take(19).collect::<String>()),
        false => command,
    };
    let created = c["Created"].as_i64().unwrap_or(0);
    let labels = super::format::labels(&c["Labels"]);
    let mounts = c["Mounts"].as_array().cloned().unwrap_or_default();
    let mount_names: Vec<String> = mounts
        .iter()
        .map(|m| {
            let name = match s(&m["Name"]) {
                n if n.is_empty() => s(&m["Source"]),
                n => n,
            };
            match trunc {
                true => name.chars().take(15).collect(),
                false => name,
            }
        })
        .collect();
    let local_volumes = mounts.iter().filter(|m| m["Driver"] == "local").count();
    let mut networks: Vec<String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    networks.sort();
    let fields = [
        (
            "ID",
            short_id(c["Id"].as_str().unwrap_or_default(), trunc).to_string(),
        ),
        ("Names", names),
        ("Image", image),
        (
            "Command",
            serde_json::to_string(&command).unwrap_or_default(),
        ),
        ("CreatedAt", go_time_string(created)),
        (
            "RunningFor",
            format!("{} ago", human_duration(now - created)),
        ),
        ("Ports", ports_column(&c["Ports"])),
        ("State", s(&c["State"])),
        ("Status", s(&c["Status"])),
        ("Size", "0B".to_string()),
        ("Labels", labels),
        ("Mounts", mount_names.join(",")),
        ("Networks", networks.join(",")),
        ("LocalVolumes", local_volumes.to_string()),
    ];
    let mut row = format::row(fields);
    // The image's platform, which API 1.43 does not report: the docker CLI shows null.
    row.insert("Platform".into(), Value::Null);
    row
}

/// Docker's PORTS column. Ports are sorted by container port, address, host port and
/// protocol. A port not published, or published on the same number, joins a range with
/// the ports just below it of the same address and protocol (`53-54/udp`,
/// `0.0.0.0:8000-8002->8000-8002/tcp`); a range ends where a number is skipped. Ranges
/// come first (those cut short first, then the rest in the order they began), then the
/// mappings onto other host ports (`127.0.0.1:18080->8080/tcp`).
fn ports_column(ports: &Value) -> String {
    struct Port {
        ip: String,
        private: u64,
        public: Option<u64>,
        proto: String,
    }
    /// A range of ports: (address, if published; protocol), first, last.
    struct Range {
        key: (String, String),
        first: u64,
        last: u64,
    }
    let show = |r: &Range| {
        let (ip, proto) = &r.key;
        let span = match r.first == r.last {
            true => r.first.to_string(),
            false => format!("{}-{}", r.first, r.last),
        };
        match ip.is_empty() {
            true => format!("{span}/{proto}"),
            false => format!("{}->{span}/{proto}", host_port(ip, &span)),
        }
    };
    let mut list: Vec<Port> = ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Port {
            ip: p["IP"].as_str().unwrap_or_default().to_string(),
            private: p["PrivatePort"].as_u64().unwrap_or(0),
            public: p["PublicPort"].as_u64(),
            proto: p["Type"].as_str().unwrap_or("tcp").to_string(),
        })
        .collect();
    list.sort_by(|a, b| {
        (a.private, &a.ip, a.public.unwrap_or(0), &a.proto).cmp(&(
            b.private,
            &b.ip,
            b.public.unwrap_or(0),
            &b.proto,
        ))
    });
    let mut cut_short = Vec::new();
    let mut ranges: Vec<Range> = Vec::new();
    let mut mappings = Vec::new();
    for p in list {
        if !p.ip.is_empty() && p.public != Some(p.private) {
            let public = p.public.unwrap_or(0).to_string();
            mappings.push(format!(
                "{}->{}/{}",
                host_port(&p.ip, &public),
                p.private,
                p.proto
            ));
            continue;
        }
        let fresh = Range {
            key: (p.ip, p.proto),
            first: p.private,
            last: p.private,
        };
        match ranges.iter_mut().find(|r| r.key == fresh.key) {
            None => ranges.push(fresh),
            Some(r) if p.private == r.last + 1 => r.last = p.private,
            Some(r) => cut_short.push(show(&std::mem::replace(r, fresh))),
        }
    }
    cut_short
        .into_iter()
        .chain(ranges.iter().map(show))
        .chain(mappings)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `address:port`, with an IPv6 address in brackets, as Go's `net.JoinHostPort`.
fn host_port(ip: &str, port: &str) -> String {
    match ip.contains(':') {
        true => format!("[{ip}]:{port}"),
        false => format!("{ip}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container() -> Value {
        json!({
            "Id": "0123456789abcdef0123", "Names": ["/web", "/other/alias"],
            "Image": "busybox", "Command": "sleep 100000 and some more words",
            "Created": 1_727_386_302, "State": "running", "Status": "Up 2 seconds",
            "Ports": [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                      {"PrivatePort": 53, "Type": "udp"}],
            "Labels": {"b": "2", "a": "1"},
            "Mounts": [{"Name": "averyveryverylongvolumename", "Driver": "local", "Source": "/x"},
                       {"Name": "", "Source": "/srv/data", "Driver": ""}],
            "NetworkSettings": {"Networks": {"front": {}, "bridge": {}}},
        })
    }

    #[test]
    fn rows_carry_dockers_fields_as_strings() {
        let r = row(&container(), 1_727_386_302 + 90, true);
        let get = |k: &str| r[k].as_str().unwrap().to_string();
        assert_eq!(get("ID"), "0123456789ab");
        assert_eq!(get("Names"), "web");
        assert_eq!(get("Command"), "\"sleep 100000 and so…\"");
        assert_eq!(get("CreatedAt"), "2024-09-26 21:31:42 +0000 UTC");
        assert_eq!(get("RunningFor"), "About a minute ago");
        assert_eq!(get("Ports"), "53/udp, 127.0.0.1:8080->80/tcp");
        assert_eq!(get("Labels"), "a=1,b=2");
        assert_eq!(get("Mounts"), "averyveryverylo,/srv/data");
        assert_eq!(get("Networks"), "bridge,front");
        assert_eq!(get("LocalVolumes"), "1");
        assert_eq!(get("Size"), "0B");
        let mut keys: Vec<&str> = r.keys().map(String::as_str).collect();
        let mut fields: Vec<&str> = LISTING.headers.iter().map(|(f, _)| *f).collect();
        keys.sort();
        fields.sort();
        assert_eq!(
            keys, fields,
            "every field has a header, every header a field"
        );
    }

    #[test]
    fn ports_group_into_ranges_as_dockers_do() {
        let port = |ip: &str, private: u64, public: Option<u64>, proto: &str| {
            let mut p = json!({"PrivatePort": private, "Type": proto});
            if let Some(public) = public {
                p["IP"] = json!(ip);
                p["PublicPort"] = json!(public);
            }
            p
        };
        let ports = json!([
            port("0.0.0.0", 8002, Some(8002), "tcp"),
            port("0.0.0.0", 8000, Some(8000), "tcp"),
            port("0.0.0.0", 8001, Some(8001), "tcp"),
            port("", 54, None, "udp"),
            port("", 53, None, "udp"),
            port("", 60, None, "udp"),
            port("127.0.0.1", 80, Some(18080), "tcp"),
            port("::", 9000, Some(9000), "tcp"),
            port("::", 443, Some(8443), "tcp"),
        ]);
        assert_eq!(
            ports_column(&ports),
            "53-54/udp, 60/udp, 0.0.0.0:8000-8002->8000-8002/tcp, [::]:9000->9000/tcp, \
             127.0.0.1:18080->80/tcp, [::]:8443->443/tcp"
        );
        assert_eq!(ports_column(&json!([])), "");
    }

    #[test]
    fn no_trunc_keeps_every_name_and_the_whole_command() {
        let r = row(&container(), 0, false);
        assert_eq!(r["ID"], "0123456789abcdef0123");
        assert_eq!(r["Names"], "web,other/alias");
        assert_eq!(r["Command"], "\"sleep 100000 and some more words\"");
    }

    #[test]
    fn the_default_table_is_dockers() {
        let r = row(&container(), 1_727_386_302 + 5, true);
        let out = format::render(None, &LISTING, &[r]).unwrap();
        let mut lines = out.lines();
        let header = lines.next().unwrap();
        assert!(
            header.starts_with("CONTAINER ID   IMAGE     COMMAND "),
            "{header}"
        );
        assert!(
            header.ends_with("PORTS                            NAMES"),
            "{header}"
        );
        assert!(lines.next().unwrap().ends_with("   web"));
    }
}
