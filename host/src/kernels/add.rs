//! `berth kernel add` and `rm`: a distribution's kernel installed into berth's own
//! `assets/kernels/<name>/` (never the host's `/boot`). From a `linux-image-*.deb`, or a
//! kernel image with its config and modules beside it (`config-<release>`,
//! `/lib/modules/<release>`) or named. Its config is checked first: a kernel that lacks
//! what berth needs is refused with the missing options named. The modules berth-init needs
//! (and their dependencies) are packed into the kernel's own initramfs.

use std::path::{Path, PathBuf};

use berth_protocol::kernel::{self, KernelKind, KernelManifest, GUEST_MODULES, MANIFEST, SHARES};

use super::{deb, image_info, modules, Kernel};

/// The kernel's function names in its directory, when its package or build gave them.
const SYSTEM_MAP: &str = "System.map";

#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a usable kernel package: {what}", path.display())]
    BadPackage { path: PathBuf, what: String },
    #[error("{}: not a kernel image (neither a bzImage nor an ELF vmlinux)", .0.display())]
    NotAKernel(PathBuf),
    #[error("no config for the kernel {release}: berth checks a kernel's options before it adds it; give its .config with --config FILE")]
    NoConfig { release: String },
    #[error("the kernel {release} lacks what berth needs:\n{missing}\n(set these in its config, =y or =m)")]
    Lacks { release: String, missing: String },
    #[error("the kernel {release} builds {options} as modules: give its modules directory with --modules DIR (lib/modules/{release})")]
    NoModules { release: String, options: String },
    #[error("kernel modules: {0}")]
    Modules(String),
    #[error(
        "a kernel named {0} is installed already: `berth kernel rm {0}` first, or add with --force"
    )]
    Exists(String),
    #[error(
        "invalid kernel name {0:?}: use letters, digits, '.', '_' and '-', not starting with '.'"
    )]
    BadName(String),
    #[error("no kernel named {0} is installed (berth kernel ls)")]
    NotInstalled(String),
    #[error("the kernel {name} was built by `cargo xtask kernel`; remove it with --force")]
    Tuned { name: String },
    #[error(
        "the base initramfs {0} is missing: run `cargo xtask assets` (or install berth) first"
    )]
    NoBase(PathBuf),
}

impl AddError {
    pub fn io(path: &Path, source: std::io::Error) -> AddError {
        AddError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What `berth kernel add` was asked for.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    pub path: PathBuf,
    pub name: Option<String>,
    pub config: Option<PathBuf>,
    pub modules: Option<PathBuf>,
    pub force: bool,
    /// Recorded as the manifest's `source` instead of the package or file.
    pub source: Option<String>,
}

/// What happened, for the CLI to show.
#[derive(Debug)]
pub struct Added {
    pub kernel: Kernel,
    pub modules: Vec<String>,
    pub builtin: usize,
    pub absent: Vec<String>,
    pub no_shares: bool,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Installs the kernel at `opts.path` under `assets/kernels/<name>/`.
pub fn add(assets: &Path, opts: &AddOptions) -> Result<Added, AddError> {
    let kernels = assets.join("kernels");
    std::fs::create_dir_all(&kernels).map_err(|e| AddError::io(&kernels, e))?;
    let base = super::base_initramfs(assets);
    if !base.is_file() {
        return Err(AddError::NoBase(base));
    }
    let staging = tempfile::Builder::new()
        .prefix(".add-")
        .tempdir_in(&kernels)
        .map_err(|e| AddError::io(&kernels, e))?;
    let path = &opts.path;
    let mut head = [0u8; 8];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| AddError::io(path, e))?;
        let _ = f.read(&mut head).map_err(|e| AddError::io(path, e))?;
    }
    let (image, release, config, system_map, module_dir, source) = if deb::is_deb(&head) {
        let unpacked = staging.path().join("unpacked");
        std::fs::create_dir(&unpacked).map_err(|e| AddError::io(&unpacked, e))?;
        let u = deb::unpack(path, &unpacked)?;
        let source = format!("{} {}", u.package, u.version);
        (
            u.image,
            u.release,
            opts.config.clone().or(u.config),
            u.system_map,
            opts.modules.clone().or(u.modules),
            source,
        )
    } else {
        let bytes = std::fs::read(path).map_err(|e| AddError::io(path, e))?;
        let release =
            image_info::release(&bytes).ok_or_else(|| AddError::NotAKernel(path.clone()))?;
        let beside = path.parent().map(|d| d.join(format!("config-{release}")));
        let config = opts
            .config
            .clone()
            .or(beside.filter(|p| p.is_file()))
            .or(Some(PathBuf::from(format!("/boot/config-{release}"))).filter(|p| p.is_file()));
        // A build tree keeps `System.map` beside its vmlinux; /boot, `System.map-<release>`.
        let system_map = [
            path.parent()
                .map(|d| d.join(format!("System.map-{release}"))),
            path.parent().map(|d| d.join("System.map")),
            Some(PathBuf::from(format!("/boot/System.map-{release}"))),
        ]
        .into_iter()
        .flatten()
        .find(|p| p.is_file());
        let modules = opts
            .modules
            .clone()
            .or(Some(PathBuf::from(format!("/lib/modules/{release}"))).filter(|p| p.is_dir()));
        (
            path.clone(),
            release,
            config,
            system_map,
            modules,
            format!("file {}", path.display()),
        )
    };
    let name = opts.name.clone().unwrap_or_else(|| release.clone());
    if !valid_name(&name) {
        return Err(AddError::BadName(name));
    }
    let dest = kernels.join(&name);
    if dest.join(MANIFEST).exists() && !opts.force {
        return Err(AddError::Exists(name));
    }
    let config_path = config.ok_or_else(|| AddError::NoConfig {
        release: release.clone(),
    })?;
    let config_text =
        std::fs::read_to_string(&config_path).map_err(|e| AddError::io(&config_path, e))?;
    let missing = kernel::unmet(&config_text);
    if !missing.is_empty() {
        let lines: Vec<String> = missing
            .iter()
            .map(|r| format!("  {} ({})", r.any_of.join(" or "), r.why))
            .collect();
        return Err(AddError::Lacks {
            release,
            missing: lines.join("\n"),
        });
    }
    let values = kernel::config_values(&config_text);
    let as_modules: Vec<&str> = kernel::REQUIRED
        .iter()
        .flat_map(|r| r.any_of.iter())
        .filter(|o| values.get(**o).map(String::as_str) == Some("m"))
        .copied()
        .collect();
    let no_shares = !SHARES
        .any_of
        .iter()
        .any(|o| matches!(values.get(*o).map(String::as_str), Some("y" | "m")));

    let stage = staging.path().join("kernel");
    std::fs::create_dir(&stage).map_err(|e| AddError::io(&stage, e))?;
    let image_bytes = std::fs::read(&image).map_err(|e| AddError::io(&image, e))?;
    let elf = image_info::is_elf(&image_bytes);
    let image_name = if elf { "vmlinux" } else { "bzImage" };
    write(&stage.join(image_name), &image_bytes)?;
    write(&stage.join("config"), config_text.as_bytes())?;
    // Its functions' names, for saying where a stuck guest's vCPUs are. Debian's packages
    // ship a placeholder (one line: the real map is in the -dbg package): not kept.
    let system_map = match system_map {
        Some(map) => {
            let text = std::fs::read_to_string(&map).map_err(|e| AddError::io(&map, e))?;
            match super::symbols::Symbols::from_system_map(&text) {
                Ok(_) => {
                    write(&stage.join(SYSTEM_MAP), text.as_bytes())?;
                    Some(SYSTEM_MAP.to_string())
                }
                Err(_) => None,
            }
        }
        None => None,
    };
    let (mut names, mut builtin, mut absent) = (Vec::new(), 0, Vec::new());
    let initramfs = match (&module_dir, as_modules.is_empty()) {
        (None, true) => None,
        (None, false) => {
            return Err(AddError::NoModules {
                release,
                options: as_modules.join(", "),
            })
        }
        (Some(dir), _) => {
            let plan = modules::ModuleTree::open(dir)?.plan(GUEST_MODULES)?;
            names = plan.order.iter().map(|(n, _)| n.clone()).collect();
            builtin = plan.builtin.len();
            absent = plan.absent.clone();
            let cpio = modules::archive(&plan)?;
            write(&stage.join("modules.cpio"), &cpio)?;
            let base_bytes = std::fs::read(&base).map_err(|e| AddError::io(&base, e))?;
            write(&stage.join("initramfs.cpio"), &[base_bytes, cpio].concat())?;
            Some("initramfs.cpio".to_string())
        }
    };
    let manifest = KernelManifest {
        name: name.clone(),
        release,
        kind: KernelKind::Distro,
        vmlinux: elf.then(|| "vmlinux".into()),
        bzimage: (!elf).then(|| "bzImage".into()),
        initramfs,
        source: opts.source.clone().unwrap_or(source),
        config: Some("config".into()),
        system_map,
    };
    let mut json = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    json.push('\n');
    write(&stage.join(MANIFEST), json.as_bytes())?;
    // The new directory replaces the old one in one rename; the old one is removed after.
    if dest.exists() {
        let old = staging.path().join("old");
        std::fs::rename(&dest, &old).map_err(|e| AddError::io(&dest, e))?;
    }
    std::fs::rename(&stage, &dest).map_err(|e| AddError::io(&dest, e))?;
    let kernel = super::load(assets, &dest).map_err(|e| AddError::Modules(e.to_string()))?;
    Ok(Added {
        kernel,
        modules: names,
        builtin,
        absent,
        no_shares,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), AddError> {
    std::fs::write(path, bytes).map_err(|e| AddError::io(path, e))
}

/// `berth kernel rm NAME`: a kernel `add` installed (a tuned one only with `force`).
pub fn remove(assets: &Path, name: &str, force: bool) -> Result<(), AddError> {
    if !valid_name(name) {
        return Err(AddError::BadName(name.to_string()));
    }
    let dir = assets.join("kernels").join(name);
    let text = std::fs::read_to_string(dir.join(MANIFEST))
        .map_err(|_| AddError::NotInstalled(name.to_string()))?;
    let m: Option<KernelManifest> = serde_json::from_str(&text).ok();
    if m.is_some_and(|m| m.kind == KernelKind::Tuned) && !force {
        return Err(AddError::Tuned {
            name: name.to_string(),
        });
    }
    std::fs::remove_dir_all(&dir).map_err(|e| AddError::io(&dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_config() -> String {
        kernel::REQUIRED
            .iter()
            .map(|r| format!("{}=y\n", r.any_of[0]))
            .collect()
    }

    fn bzimage(release: &str) -> Vec<u8> {
        let mut image = vec![0u8; 0x400];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        image[0x300..0x300 + release.len()].copy_from_slice(release.as_bytes());
        image
    }

    fn assets() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(super::super::base_initramfs(tmp.path()), b"BASE").unwrap();
        tmp
    }

    #[test]
    fn an_image_with_its_config_beside_it_is_added_and_removed() {
        let a = assets();
        let src = tempfile::tempdir().unwrap();
        let image = src.path().join("vmlinuz-9.9.9-test");
        std::fs::write(&image, bzimage("9.9.9-test")).unwrap();
        std::fs::write(src.path().join("config-9.9.9-test"), full_config()).unwrap();
        std::fs::write(
            src.path().join("System.map-9.9.9-test"),
            "ffffffff81000000 T _text\n",
        )
        .unwrap();
        let opts = AddOptions {
            path: image.clone(),
            name: Some("mine".into()),
            ..Default::default()
        };
        let added = add(a.path(), &opts).unwrap();
        assert_eq!(added.kernel.name, "mine");
        // Its function names came along, for reports of where a stuck guest's vCPUs are.
        let map = added.kernel.system_map.clone().unwrap();
        assert_eq!(
            std::fs::read_to_string(map).unwrap(),
            "ffffffff81000000 T _text\n"
        );
        assert_eq!(
            added.kernel.symbols(&[]),
            Ok(added.kernel.system_map.as_deref().unwrap())
        );
        assert_eq!(added.kernel.release, "9.9.9-test");
        assert_eq!(added.kernel.kind, KernelKind::Distro);
        assert!(added.kernel.bzimage.is_some() && added.no_shares);
        assert!(matches!(add(a.path(), &opts), Err(AddError::Exists(_))));
        // Debian's placeholder map names no function: the kernel is added without one.
        std::fs::write(
            src.path().join("System.map-9.9.9-test"),
            "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n",
        )
        .unwrap();
        let again = AddOptions {
            force: true,
            ..opts.clone()
        };
        let readded = add(a.path(), &again).unwrap();
        assert_eq!(readded.kernel.system_map, None);
        assert!(!a.path().join("kernels/mine/System.map").exists());
        assert_eq!(
            readded.kernel.symbols(&[]),
            Err("the kernel was installed without a System.map that names its functions")
        );
        remove(a.path(), "mine", false).unwrap();
        assert!(!a.path().join("kernels/mine").exists());
        assert!(matches!(
            remove(a.path(), "mine", false),
            Err(AddError::NotInstalled(_))
        ));
    }

    #[test]
    fn a_kernel_lacking_options_is_refused_with_them_named() {
        let a = assets();
        let src = tempfile::tempdir().unwrap();
        let image = src.path().join("k");
        std::fs::write(&image, bzimage("9.9.9-small")).unwrap();
        let config = src.path().join("cfg");
        std::fs::write(&config, full_config().replace("CONFIG_OVERLAY_FS=y\n", "")).unwrap();
        let opts = AddOptions {
            path: image.clone(),
            config: Some(config),
            ..Default::default()
        };
        let err = add(a.path(), &opts).unwrap_err().to_string();
        assert!(
            err.contains("CONFIG_OVERLAY_FS (container root file systems)"),
            "{err}"
        );
        assert!(
            !a.path().join("kernels/9.9.9-small").exists(),
            "nothing installed"
        );
        let no_config = AddOptions {
            path: image,
            ..Default::default()
        };
        assert!(matches!(
            add(a.path(), &no_config),
            Err(AddError::NoConfig { .. })
        ));
    }

    #[test]
    fn options_built_as_modules_need_the_modules() {
        let a = assets();
        let src = tempfile::tempdir().unwrap();
        let image = src.path().join("k");
        std::fs::write(&image, bzimage("9.9.9-mods")).unwrap();
        let config = src.path().join("cfg");
        std::fs::write(
            &config,
            full_config().replace("CONFIG_OVERLAY_FS=y", "CONFIG_OVERLAY_FS=m"),
        )
        .unwrap();
        let mut opts = AddOptions {
            path: image,
            config: Some(config),
            ..Default::default()
        };
        let err = add(a.path(), &opts).unwrap_err().to_string();
        assert!(
            err.contains("CONFIG_OVERLAY_FS") && err.contains("--modules"),
            "{err}"
        );
        let mods = src.path().join("mods");
        std::fs::create_dir(&mods).unwrap();
        std::fs::write(mods.join("overlay.ko"), b"\0depends=\0").unwrap();
        opts.modules = Some(mods);
        let added = add(a.path(), &opts).unwrap();
        assert_eq!(added.modules, ["overlay"]);
        let initramfs = std::fs::read(&added.kernel.initramfs).unwrap();
        assert!(
            initramfs.starts_with(b"BASE070701"),
            "the base, then the modules"
        );
    }
}
