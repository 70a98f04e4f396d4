//! `cargo xtask initramfs`: the base initramfs (berth-init plus busybox), the benchmark floor,
//! and the per-kernel initramfs of kernels that bring their own modules.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::archive::Archive;
use crate::assets::{self, assets_dir};
use crate::cmd::Cmd;
use crate::elf;
use crate::guest;

/// Debian's busybox-static.
pub const BUSYBOX: &str = "/bin/busybox";

/// Directories of the base initramfs, parents first.
const DIRS: &[&str] = &[
    "/bin",
    "/dev",
    "/etc",
    "/etc/berth",
    "/lib",
    "/mnt",
    "/proc",
    "/root",
    "/run",
    "/sys",
    "/tmp",
    "/var",
    "/usr",
];

pub fn run() -> Result<()> {
    let binaries = guest::build()?;
    let assets = assets_dir()?;
    println!("== initramfs: writing into {}", assets.display());

    elf::ensure_static(Path::new(BUSYBOX))
        .context("the initramfs needs Debian's busybox-static: run `cargo xtask deps`")?;
    let busybox = read(Path::new(BUSYBOX))?;
    let applets = busybox_applets()?;
    println!("busybox: {} applets", applets.len());

    let base = base_archive(&read(&binaries.init)?, &busybox, &applets)?;
    write(&assets::base_initramfs(&assets), &base)?;

    let floor = floor_archive(&read(&binaries.floor_init)?)?;
    write(&assets::floor_initramfs(&assets), &floor)?;

    refresh_kernel_initramfs(&assets)
}

/// The applets busybox was built with, sorted, as names usable in `/bin`.
pub fn busybox_applets() -> Result<Vec<String>> {
    let list = Cmd::new(BUSYBOX).arg("--list").read()?;
    let mut applets: Vec<String> = list
        .lines()
        .map(str::trim)
        .filter(|name| !name.is_empty() && *name != "busybox" && !name.contains('/'))
        .map(str::to_owned)
        .collect();
    applets.sort();
    applets.dedup();
    Ok(applets)
}

fn base_archive(init: &[u8], busybox: &[u8], applets: &[String]) -> Result<Vec<u8>> {
    let mut archive = Archive::new(1);
    for dir in DIRS {
        let perm = if *dir == "/tmp" { 0o1777 } else { 0o755 };
        archive.dir(dir, perm)?;
    }
    archive.char_dev("/dev/console", 0o600, 5, 1)?;
    archive.char_dev("/dev/null", 0o666, 1, 3)?;
    archive.file("/init", 0o755, init)?;
    archive.file("/bin/busybox", 0o755, busybox)?;
    for applet in applets {
        archive.symlink(&format!("/bin/{applet}"), "busybox")?;
    }
    archive.symlink("/sbin", "bin")?;
    archive.symlink("/usr/bin", "../bin")?;
    archive.symlink("/usr/sbin", "../bin")?;
    archive.file("/etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
    archive.file("/etc/group", 0o644, b"root:x:0:\n")?;
    archive.finish()
}

fn floor_archive(floor_init: &[u8]) -> Result<Vec<u8>> {
    let mut archive = Archive::new(1);
    archive.dir("/dev", 0o755)?;
    archive.char_dev("/dev/console", 0o600, 5, 1)?;
    archive.file("/init", 0o755, floor_init)?;
    archive.finish()
}

/// Rewrites `initramfs.cpio` of every installed kernel that has a `modules.cpio`.
fn refresh_kernel_initramfs(assets: &Path) -> Result<()> {
    let kernels = assets::kernels_dir(assets);
    if !kernels.is_dir() {
        return Ok(());
    }
    let mut dirs: Vec<_> = fs::read_dir(&kernels)
        .with_context(|| format!("listing {}", kernels.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    dirs.sort();
    for dir in dirs {
        if dir.join(assets::MODULES_CPIO).is_file() {
            combine_with_modules(assets, &dir)?;
        }
    }
    Ok(())
}

/// `<kernel dir>/initramfs.cpio` = base initramfs followed by `<kernel dir>/modules.cpio`: the
/// kernel unpacks concatenated newc archives one after the other.
pub fn combine_with_modules(assets: &Path, kernel_dir: &Path) -> Result<()> {
    let base = read(&assets::base_initramfs(assets))?;
    let modules = read(&kernel_dir.join(assets::MODULES_CPIO))?;
    write(
        &kernel_dir.join(assets::KERNEL_INITRAMFS),
        &[base, modules].concat(),
    )
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    println!(
        "writing {} ({} KiB)",
        path.display(),
        bytes.len().div_ceil(1024)
    );
    assets::write_atomic(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::testing::entries;

    #[test]
    fn base_layout() {
        let applets = vec!["ls".to_owned(), "sh".to_owned()];
        let bytes = base_archive(b"INIT", b"BUSYBOX", &applets).unwrap();
        let seen = entries(&bytes);
        let find = |name: &str| {
            seen.iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        assert_eq!(find("tmp").mode, 0o041777);
        assert_eq!(find("etc/berth").mode, 0o040755);
        assert_eq!(
            (find("dev/null").mode, find("dev/null").rdev),
            (0o020666, (1, 3))
        );
        assert_eq!(find("init").data, b"INIT");
        assert_eq!(find("bin/busybox").data, b"BUSYBOX");
        assert_eq!(find("bin/sh").data, b"busybox");
        assert_eq!(find("usr/sbin").data, b"../bin");
        assert_eq!(find("etc/group").data, b"root:x:0:\n");
        // Every entry's parent directory comes before it.
        for (i, entry) in seen.iter().enumerate() {
            if let Some((parent, _)) = entry.name.rsplit_once('/') {
                assert!(seen[..i].iter().any(|s| s.name == parent), "{}", entry.name);
            }
        }
    }

    #[test]
    fn floor_layout() {
        let names: Vec<String> = entries(&floor_archive(b"FLOOR").unwrap())
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["dev", "dev/console", "init"]);
    }
}
