//! Where things live (workspace, assets, cache), the `kernel.json` manifest, and atomic file
//! writes into the assets directory. The layout is a contract shared with the host binary.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

/// The workspace root: the parent of the xtask crate.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// `$BERTH_ASSETS`, else `$BERTH_HOME/assets`, else `<data dir>/berth/assets`.
pub fn assets_dir() -> Result<PathBuf> {
    if let Some(dir) = non_empty_env("BERTH_ASSETS") {
        return Ok(dir);
    }
    if let Some(home) = non_empty_env("BERTH_HOME") {
        return Ok(home.join("assets"));
    }
    let data = dirs::data_dir().ok_or_else(|| {
        anyhow!("no data directory for this user: set BERTH_ASSETS or BERTH_HOME")
    })?;
    Ok(data.join("berth").join("assets"))
}

/// `$BERTH_CACHE`, else `<cache dir>/berth`. Kernel builds live here, outside the work tree.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = non_empty_env("BERTH_CACHE") {
        return Ok(dir);
    }
    let cache = dirs::cache_dir()
        .ok_or_else(|| anyhow!("no cache directory for this user: set BERTH_CACHE"))?;
    Ok(cache.join("berth"))
}

fn non_empty_env(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `assets/initramfs.cpio`: the base initramfs.
pub fn base_initramfs(assets: &Path) -> PathBuf {
    assets.join("initramfs.cpio")
}

/// `assets/floor-init.cpio`: the benchmark floor.
pub fn floor_initramfs(assets: &Path) -> PathBuf {
    assets.join("floor-init.cpio")
}

/// `assets/kernels`.
pub fn kernels_dir(assets: &Path) -> PathBuf {
    assets.join("kernels")
}

/// File names inside a kernel's asset directory.
pub const VMLINUX: &str = "vmlinux";
pub const BZIMAGE: &str = "bzImage";
pub const KERNEL_INITRAMFS: &str = "initramfs.cpio";
pub const MODULES_CPIO: &str = "modules.cpio";
pub use berth_protocol::kernel::MANIFEST;

/// The manifest and its kinds are the host's and guest's contract, defined in `protocol`.
pub use berth_protocol::kernel::{KernelKind, KernelManifest};

/// Writes a kernel's manifest.
pub trait WriteManifest {
    fn write(&self, kernel_dir: &Path) -> Result<()>;
}

impl WriteManifest for KernelManifest {
    fn write(&self, kernel_dir: &Path) -> Result<()> {
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        let path = kernel_dir.join(MANIFEST);
        println!("writing {}", path.display());
        write_atomic(&path, json.as_bytes())
    }
}

/// The temporary sibling used to replace `path` atomically.
fn temp_sibling(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".tmp-{}", std::process::id()));
    Ok(path.with_file_name(temp))
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

fn rename_into_place(temp: &Path, path: &Path) -> Result<()> {
    fs::rename(temp, path).with_context(|| {
        let _ = fs::remove_file(temp);
        format!("renaming {} to {}", temp.display(), path.display())
    })
}

/// Writes `bytes` to `path` via a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    create_parent(path)?;
    let temp = temp_sibling(path)?;
    fs::write(&temp, bytes).with_context(|| format!("writing {}", temp.display()))?;
    rename_into_place(&temp, path)
}

/// Copies `from` to `to` via a temporary file next to `to` and a rename (a real copy, never a
/// link, so the assets stay valid when the cache is cleaned).
pub fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    println!("copying {} -> {}", from.display(), to.display());
    create_parent(to)?;
    let temp = temp_sibling(to)?;
    fs::copy(from, &temp)
        .with_context(|| format!("copying {} to {}", from.display(), temp.display()))?;
    rename_into_place(&temp, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_is_a_hidden_sibling() {
        let temp = temp_sibling(Path::new("a/b/kernel.json")).unwrap();
        assert_eq!(temp.parent(), Some(Path::new("a/b")));
        let name = temp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".kernel.json.tmp-"), "{name}");
    }
}
