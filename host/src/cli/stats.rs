//! `berth stats`: each container's CPU, memory, network and block I/O and processes,
//! in the docker CLI's columns and `--format` fields. A terminal gets the table redrawn
//! in place; a pipe gets each sample as plain text, with no escape codes.

use std::io::{IsTerminal, Write};

use hyper::Method;
use serde_json::{Map, Value};

use super::api::{enc, Api};
use super::format::{self, Listing};
use crate::size::{human_binary, human_size};
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Print one sample and exit.
    #[arg(long)]
    no_stream: bool,
    /// Show every container, not only running ones.
    #[arg(short, long)]
    all: bool,
    /// Do not truncate ids.
    #[arg(long)]
    no_trunc: bool,
    /// `table`, `json`, or a Go template (`{{.Name}} {{.CPUPerc}}`).
    #[arg(long)]
    format: Option<String>,
    /// Containers (default: every running one).
    containers: Vec<String>,
}

/// Docker's stats fields, with the headers `table` prints for them.
pub const LISTING: Listing = Listing {
    default: "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
    headers: &[
        ("Container", "CONTAINER"),
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ],
};

pub async fn stats(api: &Api, a: StatsArgs) -> Result<i32, Error> {
    let redraw = !a.no_stream && std::io::stdout().is_terminal();
    loop {
        let names: Vec<String> = match a.containers.is_empty() {
            true => api
                .call(
                    Method::GET,
                    &format!("/containers/json?all={}", u8::from(a.all)),
                    None,
                )
                .await?
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    c["Id"]
                        .as_str()
                        .map(|id| id[..id.len().min(12)].to_string())
                })
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
            rows.push(row(name, &v, !a.no_trunc));
        }
        let text = format::render(a.format.as_deref(), &LISTING, &rows)?;
        let mut out = std::io::stdout().lock();
        if redraw {
            // Home, the table, then clear what the last, longer table left below it.
            write!(out, "\x1b[H{}\x1b[J", text.replace('\n', "\x1b[K\n"))?;
        } else {
            write!(out, "{text}")?;
        }
        out.flush()?;
        if a.no_stream {
            return Ok(0);
        }
        drop(out);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// One sample as the docker CLI's stats context shows it: every field a string.
/// `container` is the name the user gave (or the short id when none was given).
pub fn row(container: &str, v: &Value, trunc: bool) -> Map<String, Value> {
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
    let pct = match limit > 0.0 {
        true => mem / limit * 100.0,
        false => 0.0,
    };
    let (mut rx, mut tx) = (0u64, 0u64);
    for net in v["networks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, n)| n)
    {
        rx += net["rx_bytes"].as_u64().unwrap_or(0);
        tx += net["tx_bytes"].as_u64().unwrap_or(0);
    }
    let (mut read, mut write) = (0u64, 0u64);
    for e in v["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let value = e["value"].as_u64().unwrap_or(0);
        match e["op"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "read" => read += value,
            "write" => write += value,
            _ => {}
        }
    }
    let id = v["id"].as_str().unwrap_or_default();
    let fields = [
        ("Container", container.to_string()),
        (
            "ID",
            match trunc {
                true => id[..id.len().min(12)].to_string(),
                false => id.to_string(),
            },
        ),
        (
            "Name",
            v["name"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
        ),
        ("CPUPerc", format!("{cpu:.2}%")),
        (
            "MemUsage",
            format!("{} / {}", human_binary(mem), human_binary(limit)),
        ),
        ("MemPerc", format!("{pct:.2}%")),
        ("NetIO", format!("{} / {}", human_size(rx), human_size(tx))),
        (
            "BlockIO",
            format!("{} / {}", human_size(read), human_size(write)),
        ),
        (
            "PIDs",
            v["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
        ),
    ];
    format::row(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_compute_cpu_memory_network_and_block_io() {
        let v = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 200}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 2097152, "limit": 4194304, "stats": {"inactive_file": 1048576}},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 700}, "eth1": {"rx_bytes": 500, "tx_bytes": 0}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"op": "read", "value": 4096}, {"op": "write", "value": 1000000}, {"op": "Read", "value": 4}]},
            "pids_stats": {"current": 3}
        });
        let r = row("web", &v, true);
        let get = |k: &str| r[k].as_str().unwrap().to_string();
        assert_eq!(get("ID"), "0123456789ab");
        assert_eq!(get("Container"), "web");
        assert_eq!(get("Name"), "web");
        assert_eq!(get("CPUPerc"), "20.00%");
        assert_eq!(get("MemUsage"), "1MiB / 4MiB");
        assert_eq!(get("MemPerc"), "25.00%");
        assert_eq!(get("NetIO"), "2kB / 700B");
        assert_eq!(get("BlockIO"), "4.1kB / 1MB");
        assert_eq!(get("PIDs"), "3");
        let out = format::render(None, &LISTING, &[r]).unwrap();
        assert!(out.starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O      BLOCK I/O     PIDS\n"), "{out}");
    }
}
