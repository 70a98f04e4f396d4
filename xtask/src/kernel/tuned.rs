//! The tuned kernel lines: Debian's `linux-source-<ver>` with berth's own patches
//! (`kernel-config/patches/`), configured with `make allnoconfig` plus berth's fragments,
//! built once per (source version, patches, fragment) in the cache.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::assets::{
    self, assets_dir, cache_dir, workspace_root, KernelKind, KernelManifest, WriteManifest,
};
use crate::cmd::Cmd;
use crate::deps;

/// Bumped when the way a kernel is built changes, so old cache entries are not reused.
const CACHE_KEY_VERSION: &str = "berth-kernel/1\n";

/// Lines of the build log shown when the build fails.
const LOG_TAIL: usize = 40;

/// Debian's source package for one kernel line.
struct Source {
    package: String,
    version: String,
    tarball: PathBuf,
}

impl Source {
    fn find(ver: &str) -> Result<Self> {
        let package = format!("linux-source-{ver}");
        let version = deps::installed_version(&package)?
            .ok_or_else(|| anyhow!("{package} is not installed: run `cargo xtask deps`"))?;
        let tarball = PathBuf::from(format!("/usr/src/{package}.tar.xz"));
        if !tarball.is_file() {
            bail!("{} is missing: run `cargo xtask deps`", tarball.display());
        }
        Ok(Self {
            package,
            version,
            tarball,
        })
    }
}

/// Where one build lives in the cache.
struct Layout {
    /// `<cache>/kernels`
    root: PathBuf,
    /// The source tree, patched, reused across configurations: `build-<ver>`.
    tree: PathBuf,
    /// `build-<ver>.log`
    log: PathBuf,
    /// `<ver>-<key>.fragment`, handed to kconfig.
    fragment: PathBuf,
    /// `<ver>-<key>/`: vmlinux, bzImage, config, release; complete once `DONE` exists.
    out: PathBuf,
}

impl Layout {
    fn new(cache: &Path, ver: &str, key: &str) -> Self {
        let root = cache.join("kernels");
        Self {
            tree: root.join(format!("build-{ver}")),
            log: root.join(format!("build-{ver}.log")),
            fragment: root.join(format!("{ver}-{key}.fragment")),
            out: root.join(format!("{ver}-{key}")),
            root,
        }
    }

    fn done(&self) -> PathBuf {
        self.out.join("DONE")
    }
}

pub fn install(ver: &str, dry_run: bool) -> Result<()> {
    println!("== kernel {ver}: tuned build from Debian's linux-source-{ver}");
    let source = Source::find(ver)?;
    let fragment = read_fragment(ver)?;
    let patches = Patches::read()?;
    let key = cache_key(&source, &patches, &fragment);
    let layout = Layout::new(&cache_dir()?, ver, &key);
    println!("source: {} {}", source.package, source.version);
    println!("config key: {key}");
    println!("output: {}", layout.out.display());

    if layout.done().is_file() {
        println!("cached: {} exists, not building", layout.done().display());
    } else if dry_run {
        print_plan(&source, &patches, &layout);
    } else {
        build(&source, &patches, &layout, &fragment)?;
    }

    let dest = assets::kernels_dir(&assets_dir()?).join(ver);
    if dry_run {
        println!("dry run: would install into {}", dest.display());
        return Ok(());
    }
    install_assets(ver, &source, &key, &layout, &dest)
}

/// `kernel-config/common.config` followed by `kernel-config/<ver>.config`.
fn read_fragment(ver: &str) -> Result<Vec<u8>> {
    let dir = workspace_root().join("kernel-config");
    let mut fragment = Vec::new();
    for name in ["common.config".to_owned(), format!("{ver}.config")] {
        let path = dir.join(name);
        fragment.extend(fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
    }
    Ok(fragment)
}

/// berth's own patches to the tuned kernels' sources, `kernel-config/patches/*.patch`,
/// applied in name order (`patch -p1`, no fuzz: a patch that does not fit a source fails
/// the build, naming it). Each adds a `CONFIG_BERTH_*` option, off unless the fragment sets
/// it, so a built kernel's config says what it has (the host reads the APIC timer's,
/// `launch_traits`).
struct Patches {
    /// (file name, path, contents), in the order they apply.
    files: Vec<(String, PathBuf, Vec<u8>)>,
}

impl Patches {
    fn read() -> Result<Self> {
        let dir = workspace_root().join("kernel-config").join("patches");
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "patch") {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let bytes =
                    fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                files.push((name, path, bytes));
            }
        }
        files.sort();
        Ok(Self { files })
    }

    /// What identifies this set: every name and content, in order.
    fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for (name, _, bytes) in &self.files {
            hasher.update(format!("{name} {}\n", bytes.len()));
            hasher.update(bytes);
        }
        hex(&hasher.finalize()[..8])
    }

    /// Applies every patch to the source tree at `tree`.
    fn apply(&self, tree: &Path) -> Result<()> {
        for (name, path, _) in &self.files {
            println!("patching the source: {name}");
            Cmd::new("patch")
                .args(["-p1", "--forward", "--batch", "--fuzz=0", "--quiet", "-i"])
                .arg(path)
                .dir(tree)
                .run()
                .with_context(|| format!("kernel-config/patches/{name} does not apply"))?;
        }
        Ok(())
    }
}

/// The file in a source tree that says which patches it has ([`Patches::digest`]).
const PATCHED_MARK: &str = ".berth-patches";

/// First 16 hex digits of sha256(version tag, source package and version, patches,
/// fragment).
fn cache_key(source: &Source, patches: &Patches, fragment: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(CACHE_KEY_VERSION);
    hasher.update(format!("{} {}\n", source.package, source.version));
    hasher.update(format!("patches {}\n", patches.digest()));
    hasher.update(fragment);
    hex(&hasher.finalize()[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut hex, byte| {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

fn print_plan(source: &Source, patches: &Patches, layout: &Layout) {
    println!("dry run: would build:");
    if tree_is_ready(layout, patches) {
        println!("  reuse the source tree {}", layout.tree.display());
    } else {
        println!(
            "  extract {} into {}",
            source.tarball.display(),
            layout.tree.display()
        );
        for (name, _, _) in &patches.files {
            println!("  apply kernel-config/patches/{name}");
        }
    }
    println!("  write the fragment to {}", layout.fragment.display());
    println!(
        "  make KCONFIG_ALLCONFIG={} allnoconfig",
        layout.fragment.display()
    );
    println!("  check every CONFIG_ line of the fragment is in .config");
    println!(
        "  make -j{} vmlinux bzImage > {}",
        jobs(),
        layout.log.display()
    );
    println!(
        "  copy vmlinux, bzImage, config, release into {}",
        layout.out.display()
    );
}

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) + 1
}

fn build(source: &Source, patches: &Patches, layout: &Layout, fragment: &[u8]) -> Result<()> {
    fs::create_dir_all(&layout.root)
        .with_context(|| format!("creating {}", layout.root.display()))?;
    prepare_tree(source, patches, layout)?;

    println!("writing {}", layout.fragment.display());
    fs::write(&layout.fragment, fragment)?;
    let make = || Cmd::new("make").dir(&layout.tree);
    make()
        .arg(format!("KCONFIG_ALLCONFIG={}", layout.fragment.display()))
        .arg("allnoconfig")
        .run()?;
    let config_path = layout.tree.join(".config");
    let config = fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    verify_config(&String::from_utf8_lossy(fragment), &config)?;
    println!("config: every option of the fragment is set");

    println!("building (the first build takes 10+ minutes; output in the log)");
    make()
        .arg(format!("-j{}", jobs()))
        .args(["vmlinux", "bzImage"])
        .run_logged(&layout.log, LOG_TAIL)?;
    let release = make().args(["-s", "kernelrelease"]).read()?;
    let release = release.trim();
    println!("release: {release}");

    fs::create_dir_all(&layout.out)?;
    for (from, to) in [
        ("vmlinux", "vmlinux"),
        ("arch/x86/boot/bzImage", "bzImage"),
        (".config", "config"),
    ] {
        let (from, to) = (layout.tree.join(from), layout.out.join(to));
        println!("copying {} -> {}", from.display(), to.display());
        fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
    }
    fs::write(layout.out.join("release"), format!("{release}\n"))?;
    fs::write(layout.done(), "")?;
    println!("built: {}", layout.out.display());
    Ok(())
}

/// Whether the source tree is there, complete, with exactly these patches.
fn tree_is_ready(layout: &Layout, patches: &Patches) -> bool {
    layout.tree.join("Makefile").is_file()
        && fs::read_to_string(layout.tree.join(PATCHED_MARK))
            .is_ok_and(|mark| mark.trim() == patches.digest())
}

/// Extracts the source tarball into the build tree and applies the patches, unless a tree
/// with these patches is already there (a tree with others, or none, is made afresh).
fn prepare_tree(source: &Source, patches: &Patches, layout: &Layout) -> Result<()> {
    if tree_is_ready(layout, patches) {
        println!("source tree: reusing {}", layout.tree.display());
        return Ok(());
    }
    if layout.tree.exists() {
        println!(
            "removing the source tree {} (incomplete, or patched otherwise)",
            layout.tree.display()
        );
        fs::remove_dir_all(&layout.tree)?;
    }
    let temp = layout.root.join(format!(".extract-{}", source.package));
    if temp.exists() {
        fs::remove_dir_all(&temp)?;
    }
    fs::create_dir_all(&temp)?;
    Cmd::new("tar")
        .arg("-xf")
        .arg(&source.tarball)
        .arg("-C")
        .arg(&temp)
        .run()?;
    let extracted = temp.join(&source.package);
    patches.apply(&extracted)?;
    fs::write(
        extracted.join(PATCHED_MARK),
        format!("{}\n", patches.digest()),
    )?;
    fs::rename(&extracted, &layout.tree).with_context(|| {
        format!(
            "moving {} to {}",
            extracted.display(),
            layout.tree.display()
        )
    })?;
    fs::remove_dir_all(&temp)?;
    Ok(())
}

/// Fails unless every `CONFIG_X=...` line of the fragment is a line of `.config`: kconfig
/// silently drops options whose dependencies are not met.
fn verify_config(fragment: &str, config: &str) -> Result<()> {
    let set: std::collections::HashSet<&str> = config.lines().map(str::trim).collect();
    let missing: Vec<&str> = fragment
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter(|line| !set.contains(line))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    bail!(
        "{} option(s) of the fragment did not make it into .config (unmet dependencies?):\n  {}",
        missing.len(),
        missing.join("\n  ")
    )
}

fn install_assets(
    ver: &str,
    source: &Source,
    key: &str,
    layout: &Layout,
    dest: &Path,
) -> Result<()> {
    println!("installing into {}", dest.display());
    assets::copy_atomic(&layout.out.join("vmlinux"), &dest.join(assets::VMLINUX))?;
    assets::copy_atomic(&layout.out.join("bzImage"), &dest.join(assets::BZIMAGE))?;
    // A tuned kernel uses the base initramfs; drop leftovers that would contradict that.
    for stale in [assets::MODULES_CPIO, assets::KERNEL_INITRAMFS] {
        let path = dest.join(stale);
        if path.exists() {
            println!("removing stale {}", path.display());
            fs::remove_file(&path)?;
        }
    }
    let release_path = layout.out.join("release");
    let release = fs::read_to_string(&release_path)
        .with_context(|| format!("reading {}", release_path.display()))?;
    assets::copy_atomic(&layout.out.join("config"), &dest.join("config"))?;
    KernelManifest {
        name: ver.to_owned(),
        release: release.trim().to_owned(),
        kind: KernelKind::Tuned,
        vmlinux: Some(assets::VMLINUX.to_owned()),
        bzimage: Some(assets::BZIMAGE.to_owned()),
        initramfs: None,
        source: format!("{} {}, config {key}", source.package, source.version),
        config: Some("config".to_owned()),
        // Its vmlinux keeps its symbol table.
        system_map: None,
    }
    .write(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_stable_and_sensitive() {
        let source = |version: &str| Source {
            package: "linux-source-6.1".into(),
            version: version.into(),
            tarball: PathBuf::new(),
        };
        let p = tempfile::tempdir().unwrap();
        let patches = patch_set(p.path(), &[("0001-a.patch", "a")]);
        let key = cache_key(&source("6.1.192-2"), &patches, b"CONFIG_SMP=y\n");
        assert_eq!(key.len(), 16);
        assert_eq!(
            key,
            cache_key(&source("6.1.192-2"), &patches, b"CONFIG_SMP=y\n")
        );
        assert_ne!(
            key,
            cache_key(&source("6.1.193-1"), &patches, b"CONFIG_SMP=y\n")
        );
        assert_ne!(
            key,
            cache_key(&source("6.1.192-2"), &patches, b"CONFIG_SMP=n\n")
        );
        for other in [
            patch_set(p.path(), &[("0001-a.patch", "b")]),
            patch_set(p.path(), &[("0001-b.patch", "a")]),
            patch_set(p.path(), &[]),
        ] {
            assert_ne!(
                key,
                cache_key(&source("6.1.192-2"), &other, b"CONFIG_SMP=y\n")
            );
        }
    }

    /// Patches named `name` with contents `text`, written into `dir`.
    fn patch_set(dir: &Path, files: &[(&str, &str)]) -> Patches {
        Patches {
            files: files
                .iter()
                .map(|(name, text)| {
                    let path = dir.join(name);
                    fs::write(&path, text).unwrap();
                    (name.to_string(), path, text.as_bytes().to_vec())
                })
                .collect(),
        }
    }

    #[test]
    fn patches_apply_in_order_and_one_that_does_not_fit_is_named() {
        let tree = tempfile::tempdir().unwrap();
        let p = tempfile::tempdir().unwrap();
        fs::write(tree.path().join("f.c"), "int a = 1;\n").unwrap();
        let one = "--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-int a = 1;\n+int a = 2;\n";
        let two = "--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-int a = 2;\n+int a = 3;\n";
        patch_set(
            p.path(),
            &[("0001-one.patch", one), ("0002-two.patch", two)],
        )
        .apply(tree.path())
        .unwrap();
        assert_eq!(
            fs::read_to_string(tree.path().join("f.c")).unwrap(),
            "int a = 3;\n"
        );
        // The source moved on: the first no longer fits, and the error says which.
        let err = patch_set(p.path(), &[("0001-one.patch", one)])
            .apply(tree.path())
            .unwrap_err();
        assert!(format!("{err:#}").contains("0001-one.patch"), "{err:#}");
    }

    #[test]
    fn a_source_tree_is_reused_only_with_the_same_patches() {
        let root = tempfile::tempdir().unwrap();
        let p = tempfile::tempdir().unwrap();
        let layout = Layout::new(root.path(), "6.1", "k");
        let ours = patch_set(p.path(), &[("0001-a.patch", "a")]);
        fs::create_dir_all(&layout.tree).unwrap();
        fs::write(layout.tree.join("Makefile"), "").unwrap();
        // A tree from before patches (no mark), or with others, is not this one.
        assert!(!tree_is_ready(&layout, &ours));
        fs::write(layout.tree.join(PATCHED_MARK), "0123\n").unwrap();
        assert!(!tree_is_ready(&layout, &ours));
        fs::write(
            layout.tree.join(PATCHED_MARK),
            format!("{}\n", ours.digest()),
        )
        .unwrap();
        assert!(tree_is_ready(&layout, &ours));
        assert!(!tree_is_ready(&layout, &patch_set(p.path(), &[])));
    }

    #[test]
    fn verification_lists_every_missing_option() {
        let fragment = "# header\nCONFIG_A=y\n\nCONFIG_B=\"x\"\nCONFIG_C=y\nCONFIG_D=64\n";
        let config = "CONFIG_A=y\nCONFIG_B=\"x\"\n# CONFIG_C is not set\nCONFIG_D=32\n";
        let err = verify_config(fragment, config).unwrap_err().to_string();
        assert!(
            err.contains("CONFIG_C=y") && err.contains("CONFIG_D=64"),
            "{err}"
        );
        assert!(!err.contains("CONFIG_A"), "{err}");
        assert!(verify_config(
            fragment,
            "CONFIG_A=y\nCONFIG_B=\"x\"\nCONFIG_C=y\nCONFIG_D=64\n"
        )
        .is_ok());
    }
}
