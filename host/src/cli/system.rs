//! `berth system df|prune|info` and `berth container prune`: what the docker CLI's
//! `system` and `container prune` show and do, through the machine's API
//! (`/system/df`, `/containers/prune`, `/networks/prune`, `/images/prune`,
//! `/volumes/prune`). A prune asks first on a terminal, and needs `-f` elsewhere.

use hyper::Method;
use serde_json::Value;

use super::api::{enc, Api};
use super::prompt;
use crate::size::human_size;
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Do not ask.
    #[arg(short, long)]
    force: bool,
    /// Docker's prune filters: `until=...`, `label=...`.
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct SystemPruneArgs {
    /// Also every image no container uses, not only dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Also volumes no container uses.
    #[arg(long)]
    volumes: bool,
    /// Do not ask.
    #[arg(short, long)]
    force: bool,
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
}

/// Asks before deleting, as the docker CLI does; `-f` or a no on a terminal decide.
fn confirmed(force: bool, warning: &str) -> Result<bool, Error> {
    if force {
        return Ok(true);
    }
    if !prompt::interactive() {
        return Err(Error::Usage(format!(
            "{warning}: give -f to do it without a terminal to ask on"
        )));
    }
    Ok(prompt::confirm(&format!(
        "WARNING! {warning}.\nAre you sure you want to continue?"
    ))?)
}

/// Prints a prune's answer: the deleted list under `heading`, then returns the bytes.
fn show_deleted(answer: &Value, list: &str, heading: &str) -> u64 {
    let ids: Vec<String> = answer[list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    // Images: {"Untagged": ...} or {"Deleted": ...}.
                    Value::Object(o) => o
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(" "),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if !ids.is_empty() {
        println!("{heading}:\n{}\n", ids.join("\n"));
    }
    answer["SpaceReclaimed"].as_u64().unwrap_or(0)
}

/// `berth container prune`.
pub async fn container_prune(api: &Api, a: PruneArgs) -> Result<i32, Error> {
    if !confirmed(a.force, "This will remove all stopped containers")? {
        return Ok(0);
    }
    let q = super::api::filters_query(&a.filters)?;
    let answer = api
        .call(Method::POST, &format!("/containers/prune{q}"), None)
        .await?;
    let bytes = show_deleted(&answer, "ContainersDeleted", "Deleted Containers");
    println!("Total reclaimed space: {}", human_size(bytes));
    Ok(0)
}

/// `berth system prune`: stopped containers, unused networks, dangling (or, with `-a`,
/// unused) images, and with `--volumes` unused volumes.
pub async fn system_prune(api: &Api, a: SystemPruneArgs) -> Result<i32, Error> {
    let mut what = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if a.volumes {
        what.push("all anonymous volumes not used by at least one container");
    }
    what.push(match a.all {
        true => "all images without at least one container associated to them",
        false => "all dangling images",
    });
    let warning = format!("This will remove:\n  - {}", what.join("\n  - "));
    if !confirmed(a.force, &warning)? {
        return Ok(0);
    }
    let q = super::api::filters_query(&a.filters)?;
    let mut total = 0;
    let answer = api
        .call(Method::POST, &format!("/containers/prune{q}"), None)
        .await?;
    total += show_deleted(&answer, "ContainersDeleted", "Deleted Containers");
    let answer = api
        .call(Method::POST, &format!("/networks/prune{q}"), None)
        .await?;
    show_deleted(&answer, "NetworksDeleted", "Deleted Networks");
    if a.volumes {
        let answer = api.call(Method::POST, "/volumes/prune", None).await?;
        total += show_deleted(&answer, "VolumesDeleted", "Deleted Volumes");
    }
    let images = match a.all {
        true => {
            let all = Value::Object(serde_json::Map::from_iter([(
                "dangling".to_string(),
                Value::Array(vec![Value::String("false".into())]),
            )]))
            .to_string();
            format!("/images/prune?filters={}", enc(&all))
        }
        false => "/images/prune".to_string(),
    };
    let answer = api.call(Method::POST, &images, None).await?;
    total += show_deleted(&answer, "ImagesDeleted", "Deleted Images");
    println!("Total reclaimed space: {}", human_size(total));
    Ok(0)
}

/// One row of `system df`: total, active, size and what a prune would free.
fn df_row(kind: &str, total: usize, active: usize, size: u64, reclaimable: u64) -> String {
    let pct = match size {
        0 => 0,
        _ => reclaimable * 100 / size,
    };
    format!(
        "{kind:<16}{total:<10}{active:<10}{:<12}{} ({pct}%)",
        human_size(size),
        human_size(reclaimable)
    )
}

/// The rows of `system df` from `/system/df`'s answer, as the docker CLI computes them.
pub fn df_table(v: &Value) -> String {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let num = |x: &Value, k: &str| x[k].as_i64().unwrap_or(0).max(0) as u64;
    let images = list("Images");
    let active_images = images.iter().filter(|i| num(i, "Containers") > 0).count();
    let image_size: u64 = images.iter().map(|i| num(i, "Size")).sum();
    let used_images: u64 = images
        .iter()
        .filter(|i| num(i, "Containers") > 0)
        .map(|i| num(i, "Size"))
        .sum();
    let containers = list("Containers");
    let running = |c: &Value| c["State"].as_str() == Some("running");
    let container_size: u64 = containers.iter().map(|c| num(c, "SizeRw")).sum();
    let stopped_size: u64 = containers
        .iter()
        .filter(|c| !running(c))
        .map(|c| num(c, "SizeRw"))
        .sum();
    let volumes = list("Volumes");
    let vol_size = |x: &Value| x["UsageData"]["Size"].as_i64().unwrap_or(0).max(0) as u64;
    let vol_used = |x: &Value| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0;
    let volume_size: u64 = volumes.iter().map(vol_size).sum();
    let unused_volumes: u64 = volumes.iter().filter(|x| !vol_used(x)).map(vol_size).sum();
    let cache = list("BuildCache");
    let cache_size: u64 = cache.iter().map(|c| num(c, "Size")).sum();
    let mut out = format!(
        "{:<16}{:<10}{:<10}{:<12}{}\n",
        "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"
    );
    for row in [
        df_row(
            "Images",
            images.len(),
            active_images,
            image_size,
            image_size.saturating_sub(used_images),
        ),
        df_row(
            "Containers",
            containers.len(),
            containers.iter().filter(|c| running(c)).count(),
            container_size,
            stopped_size,
        ),
        df_row(
            "Local Volumes",
            volumes.len(),
            volumes.iter().filter(|x| vol_used(x)).count(),
            volume_size,
            unused_volumes,
        ),
        df_row("Build Cache", cache.len(), 0, cache_size, cache_size),
    ] {
        out.push_str(&row);
        out.push('\n');
    }
    out
}

/// `berth system df`.
pub async fn df(api: &Api) -> Result<i32, Error> {
    let v = api.call(Method::GET, "/system/df", None).await?;
    print!("{}", df_table(&v));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_counts_what_is_used_and_what_a_prune_frees() {
        let v = serde_json::json!({
            "Images": [{"Size": 4_000_000, "Containers": 1}, {"Size": 1_000_000, "Containers": 0}],
            "Containers": [{"State": "running", "SizeRw": 1000}, {"State": "exited", "SizeRw": 3_146_000}],
            "Volumes": [{"UsageData": {"Size": 2_097_000, "RefCount": 0}}],
            "BuildCache": []
        });
        let t = df_table(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("TYPE") && lines[0].contains("RECLAIMABLE"),
            "{t}"
        );
        assert!(
            lines[1].starts_with("Images")
                && lines[1].contains("5MB")
                && lines[1].contains("1MB (20%)"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("Containers") && lines[2].contains("3.15MB (99%)"),
            "{t}"
        );
        assert!(
            lines[3].starts_with("Local Volumes") && lines[3].contains("2.1MB (100%)"),
            "{t}"
        );
        assert!(lines[4].starts_with("Build Cache"), "{t}");
    }
}
