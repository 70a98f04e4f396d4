//! `berth images`: the stored images, one row per tag (`<none>` for an untagged image), as
//! Docker's `docker images` prints them.

use std::time::SystemTime;

use serde::Serialize;

use super::Format;
use crate::image::{time, Digest, ImageRecord, ImageStore};
use crate::paths::Paths;
use crate::size::human_size;
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Show all images, build steps' intermediate images too.
    #[arg(short, long)]
    all: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Serialize)]
struct ImageJson<'a> {
    id: &'a Digest,
    #[serde(flatten)]
    record: &'a ImageRecord,
}

pub fn run(args: Args) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    let store = ImageStore::open(&ImageStore::root_for(&paths))?;
    let index = store.index().read()?;
    let mut images: Vec<&ImageRecord> = index
        .iter()
        .filter(|r| args.all || !r.intermediate)
        .collect();
    images.sort_by_key(|r| {
        let created = r.created.as_deref().and_then(time::parse_rfc3339);
        (std::cmp::Reverse(created), r.config.clone())
    });
    if args.quiet {
        for image in &images {
            println!("{}", image.id().short());
        }
        return Ok(0);
    }
    match args.format {
        Format::Json => {
            let list: Vec<ImageJson> = images
                .iter()
                .map(|r| ImageJson {
                    id: r.id(),
                    record: r,
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
        }
        Format::Table => print!("{}", table(&images, SystemTime::now())),
    }
    Ok(0)
}

/// The table, laid out as Docker's tabwriter does (columns at least 10 wide, 3 spaces apart).
#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Remove even when containers use it or it has several tags.
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

/// `berth rmi`: works on the image store directly (no machine needed); an image used by
/// a container of any machine is refused unless `--force`.
pub fn rmi(args: RmiArgs) -> Result<i32, Error> {
    use crate::image::manage::{remove, Removal};
    let paths = Paths::from_env()?;
    let store = ImageStore::open(&ImageStore::root_for(&paths))?;
    let in_use = crate::daemon_state_in_use(&paths);
    let mut failed = false;
    for name in &args.images {
        match remove(&store, name, args.force, &in_use) {
            Ok(done) => {
                for r in done {
                    match r {
                        Removal::Untagged(t) => println!("Untagged: {t}"),
                        Removal::Deleted(id) => println!("Deleted: {id}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only untagged ones.
    #[arg(short, long)]
    all: bool,
    /// Do not ask.
    #[arg(short, long)]
    force: bool,
    /// `until=TIMESTAMP|DURATION` (other filters are refused).
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
}

/// `berth image prune [-a]`: untagged (or, with `-a`, all) images no container of any
/// machine uses, and the blobs only they needed.
pub fn prune(args: PruneArgs) -> Result<i32, Error> {
    use crate::image::manage::{prune, PruneFilter, Removal};
    let mut filter = PruneFilter {
        all: args.all,
        until: None,
    };
    for f in &args.filter {
        match f.split_once('=') {
            Some(("until", v)) => {
                filter.until = Some(time::until(v, SystemTime::now()).map_err(Error::Usage)?)
            }
            _ => {
                return Err(Error::Usage(format!(
                    "invalid filter {f:?}: image prune takes until=TIMESTAMP|DURATION"
                )))
            }
        }
    }
    if !args.force {
        let what = if args.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        if !super::prompt::interactive() {
            return Err(Error::Usage(format!(
                "{what} Not a terminal to ask on: use --force"
            )));
        }
        eprintln!("{what}");
        if !super::prompt::confirm("Are you sure you want to continue?")? {
            return Ok(1);
        }
    }
    let paths = Paths::from_env()?;
    let store = ImageStore::open(&ImageStore::root_for(&paths))?;
    let in_use = crate::daemon_state_in_use(&paths);
    let pruned = prune(&store, &filter, &in_use).map_err(|e| Error::Daemon(e.to_string()))?;
    if !pruned.removed.is_empty() {
        println!("Deleted Images:");
        for r in &pruned.removed {
            match r {
                Removal::Untagged(t) => println!("untagged: {t}"),
                Removal::Deleted(id) => println!("deleted: {id}"),
            }
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(pruned.reclaimed));
    Ok(0)
}

/// `berth tag SOURCE TARGET`.
pub fn tag(args: TagArgs) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    let store = ImageStore::open(&ImageStore::root_for(&paths))?;
    crate::image::manage::tag(&store, &args.source, &args.target).map_err(|e| match e {
        crate::image::manage::ManageError::Image(i) => Error::Image(i),
        other => Error::Api {
            status: 404,
            message: other.to_string(),
        },
    })?;
    Ok(0)
}

fn table(images: &[&ImageRecord], now: SystemTime) -> String {
    let mut rows = vec![["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"].map(String::from)];
    for image in images {
        let id = image.id().short().to_string();
        let created = time::created_since(image.created.as_deref(), now);
        let size = human_size(image.size);
        let names: Vec<(String, String)> = if image.tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            image
                .tags
                .iter()
                .map(|t| {
                    (
                        t.familiar_repository(),
                        t.tag().unwrap_or("<none>").to_string(),
                    )
                })
                .collect()
        };
        for (repository, tag) in names {
            rows.push([repository, tag, id.clone(), created.clone(), size.clone()]);
        }
    }
    tabulate(&rows)
}

/// Rows laid out as Docker's tabwriter does (columns at least 10 wide, 3 spaces apart).
pub fn tabulate<R: AsRef<[String]>>(rows: &[R]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            if widths.len() <= i {
                widths.push(10);
            }
            widths[i] = widths[i].max(cell.chars().count() + 3);
        }
    }
    let mut out = String::new();
    for row in rows {
        let row = row.as_ref();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}", width = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::image::Reference;

    #[test]
    fn table_rows_per_tag_and_none() {
        let record = |config: &[u8], tags: &[&str], size| ImageRecord {
            manifest: Digest::of(b"m"),
            config: Digest::of(config),
            layers: vec![],
            diff_ids: vec![],
            size,
            created: Some("2024-01-01T00:00:00Z".into()),
            tags: tags.iter().map(|t| Reference::parse(t).unwrap()).collect(),
            repo_digests: vec![],
            intermediate: false,
        };
        let a = record(b"a", &["busybox", "localhost:5000/x/y:t"], 4_261_550);
        let b = record(b"b", &[], 10);
        let now = UNIX_EPOCH + Duration::from_secs(1_704_067_200 + 7200);
        let text = table(&[&a, &b], now);
        let a_id = Digest::of(b"a").short().to_string();
        let b_id = Digest::of(b"b").short().to_string();
        let expected = format!(
            "REPOSITORY           TAG       IMAGE ID       CREATED       SIZE\n\
             busybox              latest    {a_id}   2 hours ago   4.26MB\n\
             localhost:5000/x/y   t         {a_id}   2 hours ago   4.26MB\n\
             <none>               <none>    {b_id}   2 hours ago   10B\n"
        );
        assert_eq!(text, expected);
    }
}
