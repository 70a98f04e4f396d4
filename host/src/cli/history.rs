//! `berth history`: an image's steps, newest first, as `docker history` prints them.

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::format::{self, Listing};
use crate::image::{history::history as steps, time, ImageStore};
use crate::paths::Paths;
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Show whole IDs and commands.
    #[arg(long)]
    no_trunc: bool,
    /// Only show IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Sizes and dates in a human-readable form (the default; `-H=false` prints raw ones).
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// `table`, `json`, or a Go template (`{{.CreatedBy}}`).
    #[arg(long)]
    format: Option<String>,
    image: String,
}

/// Docker's history fields, with the headers `table` prints for them.
const LISTING: Listing = Listing {
    default: "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
    headers: &[
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ],
};

pub fn run(args: HistoryArgs) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    let store = ImageStore::open(&ImageStore::root_for(&paths))?;
    let image = store.find(&args.image)?.ok_or_else(|| Error::Api {
        status: 404,
        message: format!("No such image: {}", args.image),
    })?;
    let steps = steps(&store, &image)?;
    let short = |id: &str| -> String {
        if args.no_trunc || id == "<missing>" {
            id.to_string()
        } else {
            id.trim_start_matches("sha256:").chars().take(12).collect()
        }
    };
    if args.quiet {
        for s in &steps {
            println!("{}", short(&s.id));
        }
        return Ok(0);
    }
    let now = SystemTime::now();
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    for s in &steps {
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s.created.max(0) as u64);
        let created = match args.human {
            true => time::created_since(Some(&time::rfc3339_nanos(when)), now),
            false => time::rfc3339_nanos(when),
        };
        let mut by = s.created_by.replace('\t', " ");
        if !args.no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        let size = match args.human {
            true => crate::size::human_size(s.size),
            false => s.size.to_string(),
        };
        let fields = [
            ("ID", short(&s.id)),
            ("CreatedSince", created),
            ("CreatedAt", time::go_time_string(s.created)),
            ("CreatedBy", by),
            ("Size", size),
            ("Comment", s.comment.clone()),
        ];
        rows.push(format::row(fields));
    }
    print!(
        "{}",
        format::render(args.format.as_deref(), &LISTING, &rows)?
    );
    Ok(0)
}
