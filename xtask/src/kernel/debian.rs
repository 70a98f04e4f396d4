//! Debian's prebuilt kernels (cloud 6.1 and 6.12, generic 6.1, rt 6.12): the newest
//! `linux-image-*-unsigned` package of each line is fetched with `apt-get download` into
//! the cache (never installed into the host's /boot) and handed to `berth kernel add`,
//! the command users run for their own kernels, which checks its config and packs the
//! modules berth-init needs into its initramfs.

use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::assets::{self, assets_dir, cache_dir};
use crate::cmd::Cmd;
use crate::pipeline::{self, Profile};

/// One line of Debian kernel packages: berth's name for it and the package name's shape
/// (`{N}` stands for the ABI or upload number).
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub name: &'static str,
    prefix: &'static str,
    suffix: &'static str,
}

pub const CLOUD_6_1: Line = Line {
    name: "cloud",
    prefix: "linux-image-6.1.0-",
    suffix: "-cloud-amd64-unsigned",
};
pub const CLOUD_6_12: Line = Line {
    name: "cloud-6.12",
    prefix: "linux-image-6.12.",
    suffix: "+deb12-cloud-amd64-unsigned",
};
pub const GENERIC_6_1: Line = Line {
    name: "generic-6.1",
    prefix: "linux-image-6.1.0-",
    suffix: "-amd64-unsigned",
};
pub const RT_6_12: Line = Line {
    name: "rt-6.12",
    prefix: "linux-image-6.12.",
    suffix: "+deb12-rt-amd64-unsigned",
};

impl Line {
    /// Whether `package` belongs to this line: the prefix, digits, the suffix.
    fn matches(&self, package: &str) -> bool {
        package
            .strip_prefix(self.prefix)
            .and_then(|rest| rest.strip_suffix(self.suffix))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// The newest package of `line` that apt knows; apt's lists are updated once when they
/// know none (a new machine's lists may be empty).
fn newest_package(line: &Line) -> Result<String> {
    match newest_known(line) {
        Ok(p) => Ok(p),
        Err(_) => {
            println!(
                "apt knows no {}N{} package yet: apt-get update",
                line.prefix, line.suffix
            );
            Cmd::new("apt-get").arg("update").run()?;
            newest_known(line)
        }
    }
}

fn newest_known(line: &Line) -> Result<String> {
    let listing = Cmd::new("apt-cache")
        .args([
            "search",
            "--names-only",
            &format!("^{}", line.prefix.replace('.', "\\.")),
        ])
        .read()?;
    let newest = listing
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| line.matches(p))
        .max_by(|a, b| compare_versions(a, b))
        .map(String::from);
    match newest {
        Some(p) => Ok(p),
        None => bail!(
            "apt knows no {}N{} package: run `apt-get update` (cargo xtask deps does)",
            line.prefix,
            line.suffix
        ),
    }
}

/// The newest package of `line` in the cache (`$BERTH_CACHE/debs`), downloaded with
/// `apt-get download` when it is not there.
pub fn fetch(line: Line) -> Result<PathBuf> {
    let package = newest_package(&line)?;
    let debs = cache_dir()?.join("debs");
    fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    if let Some(deb) = find_deb(&debs, &package)? {
        return Ok(deb);
    }
    println!("downloading {package} (apt-get download; nothing is installed)");
    Cmd::new("apt-get")
        .args(["download", &package])
        .dir(&debs)
        .run()?;
    find_deb(&debs, &package)?.with_context(|| {
        format!(
            "apt-get download left no {package}_*.deb in {}",
            debs.display()
        )
    })
}

/// Downloads (or finds in the cache) the newest package of `line` and adds it to berth.
pub fn install(line: Line, dry_run: bool) -> Result<()> {
    println!("== kernel {}: Debian's prebuilt package", line.name);
    let package = newest_package(&line)?;
    let dest = assets::kernels_dir(&assets_dir()?).join(line.name);
    if dry_run {
        println!(
            "dry run: would download {package} and add it as {}",
            dest.display()
        );
        return Ok(());
    }
    let deb = fetch(line)?;
    let source = format!(
        "{package} {}",
        deb.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('_').nth(1))
            .unwrap_or("?")
    );
    // Added every time (seconds): the modules berth-init needs may have changed since.
    if !assets::base_initramfs(&assets_dir()?).is_file() {
        crate::initramfs::run()?;
    }
    let berth = pipeline::build_host(Profile::Debug)?;
    Cmd::new(berth.display().to_string())
        .args([
            "kernel", "add", "--force", "--name", line.name, "--source", &source,
        ])
        .arg(deb.display().to_string())
        .env("BERTH_ASSETS", assets_dir()?)
        .run()
}

/// `<package>_<version>_<arch>.deb` in `dir`.
fn find_deb(dir: &Path, package: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{package}_");
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found.pop())
}

/// Compares version strings with runs of digits compared as numbers ("6.10" > "6.9").
fn compare_versions(a: &str, b: &str) -> Ordering {
    let (a, b) = (digit_runs(a), digit_runs(b));
    for (x, y) in a.iter().zip(&b) {
        let numeric = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
        let ord = if numeric(x) && numeric(y) {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

/// Splits `s` into maximal runs of ASCII digits and of everything else.
fn digit_runs(s: &str) -> Vec<&str> {
    let bytes = s.as_bytes();
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=bytes.len() {
        if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit() {
            runs.push(&s[start..i]);
            start = i;
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_lines_match_only_their_own_flavour() {
        assert!(CLOUD_6_1.matches("linux-image-6.1.0-57-cloud-amd64-unsigned"));
        assert!(
            !CLOUD_6_1.matches("linux-image-6.1.0-57-cloud-amd64"),
            "signed"
        );
        assert!(GENERIC_6_1.matches("linux-image-6.1.0-57-amd64-unsigned"));
        assert!(!GENERIC_6_1.matches("linux-image-6.1.0-57-cloud-amd64-unsigned"));
        assert!(!GENERIC_6_1.matches("linux-image-6.1.0-57-rt-amd64-unsigned"));
        assert!(CLOUD_6_12.matches("linux-image-6.12.118+deb12-cloud-amd64-unsigned"));
        assert!(RT_6_12.matches("linux-image-6.12.9+deb12-rt-amd64-unsigned"));
        assert!(!RT_6_12.matches("linux-image-6.12.118+deb12-amd64-unsigned"));
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(
            compare_versions("linux-image-6.12.118+x", "linux-image-6.12.99+x"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("6.1.0-9", "6.1.0-57"), Ordering::Less);
    }
}
