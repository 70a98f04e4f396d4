//! `berth save` and `berth import`: images to a `docker save` tar, and a root file system
//! tarball to a one-layer image. Both work on the host's store (no machine needed).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::image::import::{import as import_image, ImportOptions};
use crate::image::{save::save as save_images, ImageStore, Reference};
use crate::paths::Paths;
use crate::Error;

#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Images by name or ID.
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A Dockerfile instruction for the image's config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// The history comment.
    #[arg(short, long, default_value = "")]
    message: String,
    /// Only linux/amd64, the machines' platform.
    #[arg(long)]
    platform: Option<String>,
    /// A tarball (plain, gzip or zstd), or `-` for stdin.
    file: String,
    /// REPOSITORY[:TAG] to tag the image with.
    reference: Option<String>,
}

fn store() -> Result<ImageStore, Error> {
    let paths = Paths::from_env()?;
    Ok(ImageStore::open(&ImageStore::root_for(&paths))?)
}

pub fn save(args: SaveArgs) -> Result<i32, Error> {
    let store = store()?;
    match &args.output {
        Some(path) => {
            // Written beside the target and renamed, so a failure leaves no half archive.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::Builder::new()
                .prefix(".berth-save-")
                .tempfile_in(dir)?;
            save_images(
                &store,
                &args.images,
                std::io::BufWriter::new(tmp.as_file_mut()),
            )?;
            tmp.as_file().sync_all()?;
            tmp.persist(path).map_err(|e| Error::Io(e.error))?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                return Err(Error::Usage(
                    "cowardly refusing to save to a terminal: use the -o flag or redirect".into(),
                ));
            }
            let mut out = std::io::BufWriter::new(stdout.lock());
            save_images(&store, &args.images, &mut out)?;
            out.flush()?;
        }
    }
    Ok(0)
}

pub fn import(args: ImportArgs) -> Result<i32, Error> {
    super::pull::platform(args.platform.as_deref()).and_then(|p| {
        if p.runnable() {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "--platform {p}: berth's machines run linux/amd64 images only"
            )))
        }
    })?;
    if args.file.contains("://") {
        return Err(Error::Usage(format!(
            "importing from a URL ({}) is not supported: download it and import the file",
            args.file
        )));
    }
    let tag = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let opts = ImportOptions {
        changes: args.changes,
        message: args.message,
        tag,
    };
    let store = store()?;
    let id = if args.file == "-" {
        if std::io::stdin().is_terminal() {
            return Err(Error::Usage(
                "import from stdin, but stdin is a terminal: pipe a tarball in".into(),
            ));
        }
        import_image(&store, std::io::stdin().lock(), &opts)?
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| Error::Usage(format!("cannot open {}: {e}", args.file)))?;
        import_image(&store, std::io::BufReader::new(file), &opts)?
    };
    println!("{id}");
    Ok(0)
}
