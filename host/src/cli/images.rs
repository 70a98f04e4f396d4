//! `berth images`: the stored images, one row per tag (`<none>` for an untagged image), as
//! Docker's `docker images` prints them.

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::format::{self, Listing};
use crate::image::{time, ImageRecord, ImageStore};
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
    /// Do not truncate image IDs.
    #[arg(long)]
    no_trunc: bool,
    /// Show each tag's repository digest.
    #[arg(long)]
    digests: bool,
    /// `table`, `json`, or a Go template (`{{.Repository}}:{{.Tag}}`).
    #[arg(long)]
    format: Option<String>,
}

/// Docker's image fields, with the headers `table` prints for them.
const LISTING: Listing = Listing {
    default: "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
    headers: &[
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
        ("SharedSize", "SHARED SIZE"),
        ("UniqueSize", "UNIQUE SIZE"),
        ("VirtualSize", "VIRTUAL SIZE"),
        ("Containers", "CONTAINERS"),
    ],
};
/// With `--digests`, the digest column after the tag, as Docker adds it.
const WITH_DIGESTS: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

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
            println!("{}", image_id(image, args.no_trunc));
        }
        return Ok(0);
    }
    let rows = rows(&images, SystemTime::now(), args.no_trunc);
    let format = match (args.format.as_deref(), args.digests) {
        (None | Some("" | "table"), true) => Some(WITH_DIGESTS),
        (f, _) => f,
    };
    print!("{}", format::render(format, &LISTING, &rows)?);
    Ok(0)
}

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

/// An image's ID as listings show it: 12 hex digits, or whole with `--no-trunc`.
fn image_id(image: &ImageRecord, no_trunc: bool) -> String {
    match no_trunc {
        true => image.id().to_string(),
        false => image.id().short().to_string(),
    }
}

/// One row per tag (one `<none>` row for an untagged image), as the docker CLI's image
/// context shows it: every field a string.
fn rows(images: &[&ImageRecord], now: SystemTime, no_trunc: bool) -> Vec<Map<String, Value>> {
    let mut rows = Vec::new();
    for image in images {
        let id = image_id(image, no_trunc);
        let created = time::created_since(image.created.as_deref(), now);
        let created_at = image
            .created
            .as_deref()
            .and_then(time::parse_rfc3339)
            .map(time::go_time_string)
            .unwrap_or_default();
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
            let digest = image
                .repo_digests
                .iter()
                .filter_map(|d| d.split_once('@'))
                .find(|(repo, _)| *repo == repository || repo.ends_with(&format!("/{repository}")))
                .map(|(_, digest)| digest.to_string())
                .unwrap_or_else(|| "<none>".into());
            let fields = [
                ("ID", id.clone()),
                ("Repository", repository),
                ("Tag", tag),
                ("Digest", digest),
                ("CreatedSince", created.clone()),
                ("CreatedAt", created_at.clone()),
                ("Size", size.clone()),
                ("SharedSize", "N/A".into()),
                ("UniqueSize", "N/A".into()),
                ("VirtualSize", size.clone()),
                ("Containers", "N/A".into()),
            ];
            rows.push(format::row(fields));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::image::{Digest, Reference};

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
        let text = format::render(None, &LISTING, &rows(&[&a, &b], now, false)).unwrap();
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
