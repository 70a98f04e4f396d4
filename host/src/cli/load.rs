//! `berth load`: images from a `docker save` archive or an OCI image layout, as Docker's
//! `docker load` (`-i FILE`, else the archive on stdin). On a terminal, each layer read
//! gets a `Loading layer` bar, as Docker's; to a pipe, only the `Loaded image` lines.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::image::watch::{Unwatched, Watch};
use crate::image::{self, ImageStore, Loaded};
use crate::paths::Paths;
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read from FILE instead of STDIN: a `docker save` tar or an OCI layout (a tar, gzip
    /// allowed, or a directory).
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<i32, Error> {
    let paths = Paths::from_env()?;
    let store = ImageStore::open(&ImageStore::root_for(&paths))?;
    let bars = std::io::stdout().is_terminal().then(|| Bars {
        multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
        drawn: std::cell::Cell::new(false),
    });
    let watch: &dyn Watch = match &bars {
        Some(bars) => bars,
        None => &Unwatched,
    };
    let loaded = match &args.input {
        Some(path) => image::load_path_watched(&store, path, watch)?,
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(Error::Usage(
                    "requested load from stdin, but stdin is a terminal: use -i FILE or \
                     pipe an archive into berth load"
                        .into(),
                ));
            }
            image::load_reader_watched(&store, stdin.lock(), "stdin", watch)?
        }
    };
    // The bars leave the cursor at the end of their last line.
    if bars.is_some_and(|b| b.drawn.get()) {
        println!();
    }
    for line in report(&loaded) {
        println!("{line}");
    }
    Ok(0)
}

/// Files smaller than this (configs, manifests) get no bar.
const BAR_MIN: u64 = 1 << 20;

/// A `Loading layer` bar per large file of the archive, finished when it is read.
struct Bars {
    multi: MultiProgress,
    /// Whether any bar was drawn.
    drawn: std::cell::Cell<bool>,
}

impl Watch for Bars {
    fn reading(&self, path: &str, size: u64) -> Box<dyn FnMut(u64) + '_> {
        if size < BAR_MIN {
            return Box::new(|_| {});
        }
        self.drawn.set(true);
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix}: Loading layer [{bar:40}] {bytes}/{total_bytes}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(layer_name(path));
        let done = Finish(bar);
        Box::new(move |n| done.0.inc(n))
    }
}

/// Finishes its bar when the file's reader is dropped.
struct Finish(ProgressBar);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// A layer's short name from its path in the archive: the first 12 characters of the
/// longest hex part (its digest: `blobs/sha256/HEX`, `HEX/layer.tar`), else the path.
fn layer_name(path: &str) -> String {
    path.split(['/', '.'])
        .filter(|p| p.len() >= 12 && p.chars().all(|c| c.is_ascii_hexdigit()))
        .max_by_key(|p| p.len())
        .map(|p| p[..12].to_string())
        .unwrap_or_else(|| path.to_string())
}

/// Docker's lines: `Loaded image: busybox:latest` per tag, `Loaded image ID: sha256:…` for an
/// untagged image.
fn report(loaded: &[Loaded]) -> Vec<String> {
    let mut lines = Vec::new();
    for image in loaded {
        if image.tags.is_empty() {
            lines.push(format!("Loaded image ID: {}", image.id));
        }
        for tag in &image.tags {
            lines.push(format!("Loaded image: {}", tag.familiar()));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Digest, Reference};

    #[test]
    fn layers_are_named_by_their_digest() {
        let hex = "5d8f2a1b3c4d".repeat(5);
        assert_eq!(layer_name(&format!("blobs/sha256/{hex}")), "5d8f2a1b3c4d");
        assert_eq!(layer_name(&format!("{hex}/layer.tar")), "5d8f2a1b3c4d");
        assert_eq!(layer_name("layer.tar"), "layer.tar");
    }

    #[test]
    fn reports_like_docker() {
        let id = Digest::of(b"config");
        let loaded = [
            Loaded {
                id: id.clone(),
                tags: vec![
                    Reference::parse("docker.io/library/busybox:latest").unwrap(),
                    Reference::parse("localhost:5000/x:1").unwrap(),
                ],
            },
            Loaded {
                id: id.clone(),
                tags: vec![],
            },
        ];
        assert_eq!(
            report(&loaded),
            [
                "Loaded image: busybox:latest".to_string(),
                "Loaded image: localhost:5000/x:1".to_string(),
                format!("Loaded image ID: {id}"),
            ]
        );
    }
}
