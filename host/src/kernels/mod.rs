//! The kernels berth can boot: those `cargo xtask` or `berth kernel add` installed under
//! `assets/kernels/<name>/` (each with a `kernel.json`), or any kernel image file named by
//! path. `add` installs a distribution's kernel (a `.deb` or an image with its modules).

pub mod add;
mod deb;
mod image_info;
mod modules;
pub mod symbols;

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Preferred order when no kernel is named: tuned kernels first (fast boot), newest LTS last.
const PREFERENCE: &[&str] = &["6.1", "6.12", "cloud"];

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("no kernels installed in {0}: run `cargo xtask demo` (or `cargo xtask assets`) first")]
    NoneInstalled(PathBuf),
    #[error("no kernel named {name:?}; installed: {available}")]
    NotFound { name: String, available: String },
    #[error("kernel {name}: {problem}")]
    Broken { name: String, problem: String },
    #[error("the base initramfs {0} is missing: run `cargo xtask initramfs`")]
    NoInitramfs(PathBuf),
}

pub use berth_protocol::kernel::{KernelKind, KernelManifest as Manifest};

/// A bootable kernel with absolute paths.
#[derive(Debug, Clone, Serialize)]
pub struct Kernel {
    pub name: String,
    pub release: String,
    pub kind: KernelKind,
    /// Uncompressed ELF with a PVH note: boots directly under `-M microvm`.
    pub vmlinux: Option<PathBuf>,
    /// Compressed boot image: boots on every machine type.
    pub bzimage: Option<PathBuf>,
    pub initramfs: PathBuf,
    pub source: String,
    /// Its config (`CONFIG_...` lines), when known.
    pub config: Option<PathBuf>,
    /// Its `System.map`, when its image has no symbol table of its own.
    pub system_map: Option<PathBuf>,
}

/// What a kernel's config says about how to launch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchTraits {
    /// Its timer frequency (`CONFIG_HZ`); `None` when its config is not known (a kernel
    /// named by path).
    pub tick_hz: Option<u64>,
    /// Whether it rewrites its own code as it runs (static keys, `CONFIG_JUMP_LABEL=y`),
    /// which multi-threaded TCG cannot be trusted with ([`crate::qemu::one_tcg_thread`]);
    /// assumed of a kernel whose config is not known, as distributions' kernels do.
    pub patches_its_code: bool,
    /// Whether it takes its APIC timer's rate from the command line (berth's kernel patch,
    /// [`berth_protocol::kernel::LAPIC_TIMER_PERIOD_OPTION`]): the tuned kernels do.
    pub takes_lapic_timer_period: bool,
}

impl Kernel {
    /// What its config says about how to launch it (the file is read once).
    pub fn launch_traits(&self) -> LaunchTraits {
        let config = self
            .config
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok());
        LaunchTraits {
            tick_hz: config.as_deref().and_then(berth_protocol::kernel::tick_hz),
            patches_its_code: config
                .as_deref()
                .is_none_or(|c| berth_protocol::kernel::built_in(c, "CONFIG_JUMP_LABEL")),
            takes_lapic_timer_period: config.as_deref().is_some_and(|c| {
                berth_protocol::kernel::built_in(
                    c,
                    berth_protocol::kernel::LAPIC_TIMER_PERIOD_OPTION,
                )
            }),
        }
    }

    /// Where its function names are: its `System.map`, or its vmlinux (an ELF file with
    /// its symbol table), or why they are not known. A kernel that randomizes its base
    /// (KASLR, unless booted with `nokaslr` among `args`) runs at addresses no file names.
    pub fn symbols(&self, args: &[String]) -> Result<&Path, &'static str> {
        let file = self
            .system_map
            .as_deref()
            .or(self.vmlinux.as_deref())
            .ok_or("the kernel was installed without a System.map that names its functions")?;
        let config = self
            .config
            .as_ref()
            .and_then(|c| std::fs::read_to_string(c).ok())
            .unwrap_or_default();
        if berth_protocol::kernel::built_in(&config, "CONFIG_RANDOMIZE_BASE")
            && !args.iter().any(|a| a == "nokaslr")
        {
            return Err("the kernel randomizes its base (KASLR); boot it with --kernel-arg nokaslr to name them");
        }
        Ok(file)
    }

    /// The image to hand QEMU: vmlinux (PVH) when we have one and may use it.
    pub fn image(&self, prefer_pvh: bool) -> &Path {
        match (&self.vmlinux, &self.bzimage) {
            (Some(v), _) if prefer_pvh => v,
            (_, Some(b)) => b,
            (Some(v), None) => v,
            (None, None) => unreachable!("a kernel always has an image (checked on load)"),
        }
    }
}

/// The base initramfs that kernels without one of their own use.
pub fn base_initramfs(assets: &Path) -> PathBuf {
    assets.join("initramfs.cpio")
}

/// Every installed kernel, in preference order.
pub fn list(assets: &Path) -> Result<Vec<Kernel>, KernelError> {
    let dir = assets.join("kernels");
    let mut kernels = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            if entry
                .path()
                .join(berth_protocol::kernel::MANIFEST)
                .is_file()
            {
                kernels.push(load(assets, &entry.path())?);
            }
        }
    }
    kernels.sort_by_key(|k| {
        let rank = PREFERENCE
            .iter()
            .position(|p| *p == k.name)
            .unwrap_or(PREFERENCE.len());
        (rank, k.name.clone())
    });
    Ok(kernels)
}

fn load(assets: &Path, dir: &Path) -> Result<Kernel, KernelError> {
    let name = dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let broken = |problem: String| KernelError::Broken {
        name: name.clone(),
        problem,
    };
    let text = std::fs::read_to_string(dir.join(berth_protocol::kernel::MANIFEST))
        .map_err(|e| broken(format!("kernel.json: {e}")))?;
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| broken(format!("kernel.json: {e}")))?;
    let file = |rel: &Option<String>| -> Result<Option<PathBuf>, KernelError> {
        match rel {
            Some(r) => {
                let p = dir.join(r);
                if p.is_file() {
                    Ok(Some(p))
                } else {
                    Err(broken(format!("{} is missing", p.display())))
                }
            }
            None => Ok(None),
        }
    };
    let vmlinux = file(&m.vmlinux)?;
    let bzimage = file(&m.bzimage)?;
    if vmlinux.is_none() && bzimage.is_none() {
        return Err(broken("kernel.json names no image".into()));
    }
    let initramfs = file(&m.initramfs)?.unwrap_or_else(|| base_initramfs(assets));
    Ok(Kernel {
        name: m.name,
        release: m.release,
        kind: m.kind,
        vmlinux,
        bzimage,
        initramfs,
        source: m.source,
        config: m.config.map(|r| dir.join(r)).filter(|p| p.is_file()),
        system_map: m.system_map.map(|r| dir.join(r)).filter(|p| p.is_file()),
    })
}

/// Resolves `--kernel`: an installed name, a path to a kernel image, or (when `None`) the
/// preferred installed kernel.
pub fn resolve(assets: &Path, spec: Option<&str>) -> Result<Kernel, KernelError> {
    let installed = list(assets)?;
    let kernel = match spec {
        None => installed
            .into_iter()
            .next()
            .ok_or_else(|| KernelError::NoneInstalled(assets.to_path_buf()))?,
        Some(s) => match installed.iter().find(|k| k.name == s) {
            Some(k) => k.clone(),
            None if looks_like_path(s) => custom(assets, Path::new(s))?,
            None => {
                let names: Vec<_> = installed.iter().map(|k| k.name.as_str()).collect();
                return Err(KernelError::NotFound {
                    name: s.to_string(),
                    available: if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    },
                });
            }
        },
    };
    if !kernel.initramfs.is_file() {
        return Err(KernelError::NoInitramfs(kernel.initramfs));
    }
    Ok(kernel)
}

/// A comma-separated `--kernel` list, or the preferred installed kernel when none is given.
pub fn names(assets: &Path, list: Option<&str>) -> Result<Vec<String>, KernelError> {
    match list {
        Some(k) => Ok(k
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()),
        None => Ok(vec![resolve(assets, None)?.name]),
    }
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.contains('\\') || Path::new(s).is_file()
}

fn custom(assets: &Path, path: &Path) -> Result<Kernel, KernelError> {
    let name = path.display().to_string();
    if !path.is_file() {
        return Err(KernelError::Broken {
            name,
            problem: "no such file".into(),
        });
    }
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    // An ELF image boots through PVH; anything else is treated as a bzImage.
    let is_elf = image_info::file_is_elf(&path);
    Ok(Kernel {
        name,
        release: "unknown".into(),
        kind: KernelKind::Custom,
        vmlinux: is_elf.then(|| path.clone()),
        bzimage: (!is_elf).then(|| path.clone()),
        initramfs: base_initramfs(assets),
        source: "named by path".into(),
        config: None,
        system_map: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(assets: &Path, name: &str, json: &str, files: &[&str]) {
        let dir = assets.join("kernels").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kernel.json"), json).unwrap();
        for f in files {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
    }

    fn tuned(name: &str) -> String {
        format!(
            r#"{{"name":"{name}","release":"{name}.0-berth","kind":"tuned","vmlinux":"vmlinux","bzimage":"bzImage","initramfs":null,"source":"test"}}"#
        )
    }

    #[test]
    fn function_names_come_from_the_map_or_the_vmlinux_unless_the_base_is_random() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path();
        std::fs::write(base_initramfs(a), b"cpio").unwrap();
        install(a, "6.1", &tuned("6.1"), &["vmlinux", "bzImage"]);
        install(
            a,
            "cloud",
            r#"{"name":"cloud","release":"6.1.0-cloud","kind":"distro","vmlinux":null,"bzimage":"bzImage","initramfs":null,"config":"config","system_map":"System.map"}"#,
            &["bzImage", "System.map"],
        );
        let tuned = resolve(a, Some("6.1")).unwrap();
        assert_eq!(
            tuned.symbols(&[]),
            Ok(a.join("kernels/6.1/vmlinux").as_path())
        );
        let cloud_dir = a.join("kernels/cloud");
        std::fs::write(cloud_dir.join("config"), "CONFIG_RANDOMIZE_BASE=y\n").unwrap();
        let cloud = resolve(a, Some("cloud")).unwrap();
        assert!(cloud.symbols(&[]).unwrap_err().contains("KASLR"));
        let nokaslr = ["nokaslr".to_string()];
        assert_eq!(
            cloud.symbols(&nokaslr),
            Ok(cloud_dir.join("System.map").as_path())
        );
        std::fs::remove_file(cloud_dir.join("System.map")).unwrap();
        // Without a map, `nokaslr` would not help: that is what it says.
        let unmapped = resolve(a, Some("cloud")).unwrap();
        assert!(unmapped.symbols(&[]).unwrap_err().contains("System.map"));
    }

    #[test]
    fn its_config_gives_its_tick_whether_it_patches_its_code_and_takes_its_apic_timer_rate() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path();
        std::fs::write(base_initramfs(a), b"cpio").unwrap();
        let json = r#"{"name":"k","release":"1","kind":"distro","vmlinux":null,"bzimage":"bzImage","initramfs":null,"config":"config"}"#;
        install(a, "k", json, &["bzImage"]);
        let config = a.join("kernels/k/config");
        let traits = || resolve(a, Some("k")).unwrap().launch_traits();
        std::fs::write(&config, "CONFIG_HZ=250\nCONFIG_JUMP_LABEL=y\n").unwrap();
        let expected = LaunchTraits {
            tick_hz: Some(250),
            patches_its_code: true,
            takes_lapic_timer_period: false,
        };
        assert_eq!(traits(), expected);
        std::fs::write(
            &config,
            "CONFIG_HZ=1000\n# CONFIG_JUMP_LABEL is not set\nCONFIG_BERTH_LAPIC_TIMER_PERIOD=y\n",
        )
        .unwrap();
        let expected = LaunchTraits {
            tick_hz: Some(1000),
            patches_its_code: false,
            takes_lapic_timer_period: true,
        };
        assert_eq!(traits(), expected);
        // Not known: no tick, and static keys assumed.
        std::fs::remove_file(&config).unwrap();
        let expected = LaunchTraits {
            tick_hz: None,
            patches_its_code: true,
            takes_lapic_timer_period: false,
        };
        assert_eq!(traits(), expected);
    }

    #[test]
    fn lists_in_preference_order_and_resolves_names() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path();
        std::fs::write(base_initramfs(a), b"cpio").unwrap();
        install(
            a,
            "cloud",
            r#"{"name":"cloud","release":"6.1.0-cloud","kind":"distro","vmlinux":null,"bzimage":"bzImage","initramfs":"initramfs.cpio"}"#,
            &["bzImage", "initramfs.cpio"],
        );
        install(a, "6.12", &tuned("6.12"), &["vmlinux", "bzImage"]);
        install(a, "6.1", &tuned("6.1"), &["vmlinux", "bzImage"]);
        let names: Vec<_> = list(a).unwrap().into_iter().map(|k| k.name).collect();
        assert_eq!(names, ["6.1", "6.12", "cloud"]);
        assert_eq!(resolve(a, None).unwrap().name, "6.1");
        let cloud = resolve(a, Some("cloud")).unwrap();
        assert_eq!(cloud.kind, KernelKind::Distro);
        assert!(cloud.initramfs.ends_with("kernels/cloud/initramfs.cpio"));
        assert!(cloud.image(true).ends_with("bzImage"));
        assert!(resolve(a, Some("6.1"))
            .unwrap()
            .image(true)
            .ends_with("vmlinux"));
    }

    #[test]
    fn unknown_names_list_what_is_installed() {
        let tmp = tempfile::tempdir().unwrap();
        install(tmp.path(), "6.1", &tuned("6.1"), &["vmlinux", "bzImage"]);
        let err = resolve(tmp.path(), Some("5.4")).unwrap_err().to_string();
        assert!(err.contains("5.4") && err.contains("6.1"), "{err}");
    }

    #[test]
    fn a_manifest_naming_a_missing_file_is_broken() {
        let tmp = tempfile::tempdir().unwrap();
        install(tmp.path(), "6.1", &tuned("6.1"), &["vmlinux"]);
        assert!(matches!(list(tmp.path()), Err(KernelError::Broken { .. })));
    }

    #[test]
    fn paths_become_custom_kernels() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(base_initramfs(tmp.path()), b"cpio").unwrap();
        let f = tmp.path().join("not-a-kernel");
        std::fs::write(&f, b"hello").unwrap();
        let k = resolve(tmp.path(), Some(f.to_str().unwrap())).unwrap();
        assert_eq!(k.kind, KernelKind::Custom);
        assert!(k.vmlinux.is_none() && k.bzimage.is_some());
        assert!(matches!(
            resolve(tmp.path(), None),
            Err(KernelError::NoneInstalled(_))
        ));
    }
}
