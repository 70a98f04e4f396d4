//! The `cloud` kernel: Debian's prebuilt `linux-image-cloud-amd64`. What berth needs from it
//! is mostly built as modules, so they are packed into the kernel's own initramfs, where
//! berth-init loads them in the order listed in `/etc/berth/modules`.

use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::modules::{self, file_stem};
use crate::archive::Archive;
use crate::assets::{self, assets_dir, KernelKind, KernelManifest};
use crate::cmd::Cmd;
use crate::{deps, initramfs};

const NAME: &str = "cloud";
const BOOT: &str = "/boot";
const SUFFIX: &str = "-cloud-amd64";

/// What berth-init needs: virtio transports and devices, vsock, container filesystems and
/// networking.
const WANTED: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "virtio_pci",
    "virtio_blk",
    "virtio_console",
    "virtio_rng",
    "virtio_net",
    "vsock",
    "vmw_vsock_virtio_transport_common",
    "vmw_vsock_virtio_transport",
    "overlay",
    "bridge",
    "veth",
    "fuse",
    "virtiofs",
    "nf_tables",
    "nft_nat",
    "nft_masq",
    "nft_ct",
    "nft_chain_nat",
    "nf_nat",
    "nf_conntrack",
    "tun",
];

/// Where modules go in the guest, and the list berth-init reads.
const GUEST_MODULE_DIR: &str = "lib/modules/berth";
const GUEST_MODULE_LIST: &str = "etc/berth/modules";

/// Inodes of the modules archive start here, clear of the base initramfs it is appended to.
const FIRST_INO: u32 = 1 << 20;

pub fn install(dry_run: bool) -> Result<()> {
    println!("== kernel {NAME}: Debian's prebuilt cloud kernel");
    let release = newest_release(Path::new(BOOT))?;
    let vmlinuz = Path::new(BOOT).join(format!("vmlinuz-{release}"));
    let module_dir = PathBuf::from(format!("/lib/modules/{release}"));
    println!("kernel: {} (release {release})", vmlinuz.display());

    let plan = modules::resolve(
        &read_text(&module_dir.join("modules.dep"))?,
        &read_text(&module_dir.join("modules.builtin"))?,
        WANTED,
    )?;
    if !plan.builtin.is_empty() {
        println!("built in (nothing to load): {}", plan.builtin.join(" "));
    }
    for name in &plan.missing {
        println!("warning: module {name} is neither in modules.dep nor built in; skipping it");
    }
    let names: Vec<String> = plan
        .order
        .iter()
        .map(|p| format!("{}.ko", file_stem(p)))
        .collect();
    println!(
        "modules in load order ({}): {}",
        names.len(),
        names.join(" ")
    );

    let assets = assets_dir()?;
    let dest = assets::kernels_dir(&assets).join(NAME);
    if dry_run {
        println!("dry run: would install into {}", dest.display());
        return Ok(());
    }

    let mut archive = Archive::new(FIRST_INO);
    for dir in ["lib", "lib/modules", GUEST_MODULE_DIR, "etc", "etc/berth"] {
        archive.dir(dir, 0o755)?;
    }
    for (path, name) in plan.order.iter().zip(&names) {
        let bytes = load_module(&module_dir.join(path))?;
        archive.file(&format!("{GUEST_MODULE_DIR}/{name}"), 0o644, &bytes)?;
    }
    let list: String = names
        .iter()
        .flat_map(|name| [name.as_str(), "\n"])
        .collect();
    archive.file(GUEST_MODULE_LIST, 0o644, list.as_bytes())?;
    let modules_cpio = dest.join(assets::MODULES_CPIO);
    println!("writing {}", modules_cpio.display());
    assets::write_atomic(&modules_cpio, &archive.finish()?)?;

    assets::copy_atomic(&vmlinuz, &dest.join(assets::BZIMAGE))?;
    if !assets::base_initramfs(&assets).is_file() {
        println!("no base initramfs yet; building it first");
        initramfs::run()?; // also combines it with the modules just written
    } else {
        initramfs::combine_with_modules(&assets, &dest)?;
    }

    KernelManifest {
        name: NAME.to_owned(),
        release: release.clone(),
        kind: KernelKind::Distro,
        vmlinux: None,
        bzimage: Some(assets::BZIMAGE.to_owned()),
        initramfs: Some(assets::KERNEL_INITRAMFS.to_owned()),
        source: source_text(&release)?,
    }
    .write(&dest)
}

/// The release of the newest `/boot/vmlinuz-*-cloud-amd64`.
fn newest_release(boot: &Path) -> Result<String> {
    let entries = fs::read_dir(boot).with_context(|| format!("listing {}", boot.display()))?;
    let mut releases = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(release) = name.strip_prefix("vmlinuz-") {
            if release.ends_with(SUFFIX) {
                releases.push(release.to_owned());
            }
        }
    }
    match releases.into_iter().max_by(|a, b| compare_versions(a, b)) {
        Some(release) => Ok(release),
        None => bail!(
            "no {}/vmlinuz-*{SUFFIX}: install linux-image-cloud-amd64 with `cargo xtask deps`",
            boot.display()
        ),
    }
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

/// A module's bytes, decompressed if Debian ships it compressed.
fn load_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let decompressor = if name.ends_with(".ko.xz") {
        Some("xz")
    } else if name.ends_with(".ko.zst") {
        Some("zstd")
    } else if name.ends_with(".ko.gz") {
        Some("gzip")
    } else {
        None
    };
    match decompressor {
        Some(tool) => Cmd::new(tool).arg("-dc").arg(path).read_bytes(),
        None => fs::read(path).with_context(|| format!("reading {}", path.display())),
    }
}

/// "linux-image-<release> <package version>", or the file when dpkg does not know it.
fn source_text(release: &str) -> Result<String> {
    let package = format!("linux-image-{release}");
    Ok(match deps::installed_version(&package)? {
        Some(version) => format!("{package} {version}"),
        None => format!("{BOOT}/vmlinuz-{release}"),
    })
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            compare_versions("6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64"),
            Ordering::Less
        );
        assert_eq!(
            compare_versions("6.12.0-1-cloud-amd64", "6.9.0-1-cloud-amd64"),
            Ordering::Greater
        );
        assert_eq!(
            compare_versions("6.1.0-56-cloud-amd64", "6.1.0-56-cloud-amd64"),
            Ordering::Equal
        );
        let mut list = vec![
            "6.1.0-56-cloud-amd64",
            "6.12.48+deb12-cloud-amd64",
            "6.1.0-9-cloud-amd64",
        ];
        list.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            list,
            [
                "6.1.0-9-cloud-amd64",
                "6.1.0-56-cloud-amd64",
                "6.12.48+deb12-cloud-amd64"
            ]
        );
    }
}
