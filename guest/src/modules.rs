//! Loads the kernel modules the initramfs carries (distro kernels build virtio, vsock and
//! overlayfs as modules; tuned kernels have everything built in and carry none).

use std::ffi::CString;
use std::fs::File;
use std::path::Path;

use crate::config::Config;
use crate::sys;

/// The list of module files in load order, one per line (written by `cargo xtask`).
pub const LIST: &str = "/etc/berth/modules";
/// Where the module files are.
pub const DIR: &str = "/lib/modules/berth";

/// Why one module failed to load.
#[derive(Debug, thiserror::Error)]
#[error("module {name}: {reason}")]
pub struct ModuleError {
    pub name: String,
    pub reason: String,
}

/// Reads the load order from `list`: one file name per line; blanks and `#` lines skipped.
pub fn load_order(list: &str) -> Vec<String> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The module name of a file: `vmw_vsock_virtio_transport.ko` -> `vmw_vsock_virtio_transport`.
pub fn module_name(file: &str) -> String {
    file.trim_end_matches(".ko").replace('-', "_")
}

/// Loads every module of `list_path` from `dir`, in order. Keeps going after a failure
/// and returns every failure, so the console shows all of them.
pub fn load_all(list_path: &Path, dir: &Path, cfg: &Config) -> Vec<ModuleError> {
    let Ok(list) = std::fs::read_to_string(list_path) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    for file in load_order(&list) {
        let name = module_name(&file);
        let result = File::open(dir.join(&file))
            .map_err(|e| e.to_string())
            .and_then(|f| {
                let params = CString::new(cfg.params_for(&name)).map_err(|e| e.to_string())?;
                sys::load_module(&f, &params).map_err(|e| e.to_string())
            });
        match result {
            Ok(()) => tracing::debug!("loaded module {name}"),
            Err(reason) => errors.push(ModuleError { name, reason }),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_order_skips_comments_and_blanks() {
        assert_eq!(
            load_order("# deps first\nvirtio.ko\n\n  virtio_mmio.ko \n"),
            vec!["virtio.ko", "virtio_mmio.ko"]
        );
    }

    #[test]
    fn module_names_use_underscores() {
        assert_eq!(module_name("virtio-mmio.ko"), "virtio_mmio");
    }

    #[test]
    fn a_missing_list_loads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_all(&dir.path().join("none"), dir.path(), &Config::default()).is_empty());
    }

    #[test]
    fn a_missing_module_file_is_reported_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("modules");
        std::fs::write(&list, "ghost.ko\n").unwrap();
        let errors = load_all(&list, dir.path(), &Config::default());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].name, "ghost");
    }
}
