//! `berth load`: images from a `docker save` archive or an OCI image layout, as Docker's
//! `docker load` (`-i FILE`, else the archive on stdin).

use std::io::IsTerminal;
use std::path::PathBuf;

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
    let loaded = match &args.input {
        Some(path) => image::load_path(&store, path)?,
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(Error::Usage(
                    "requested load from stdin, but stdin is a terminal: use -i FILE or \
                     pipe an archive into berth load"
                        .into(),
                ));
            }
            image::load_reader(&store, stdin.lock(), "stdin")?
        }
    };
    for line in report(&loaded) {
        println!("{line}");
    }
    Ok(0)
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
