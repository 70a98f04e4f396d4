//! Device nodes in a container's /dev beyond Docker's defaults: `--device`, and every
//! device of the machine for a `--privileged` container.

use std::io;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::sys::{self, NodeKind};

/// What Docker leaves out of a privileged container's /dev: the container's own mounts
/// (pts, shm, mqueue), the fd links, and the console.
const NOT_COPIED: &[&str] = &["pts", "shm", "mqueue", "fd", "console"];

/// `--device`: a node like the machine's (type, numbers, mode, owner) at the container's
/// path.
pub fn add_device(root: &Path, d: &berth_protocol::Device) -> io::Result<()> {
    let fail = |m: String| io::Error::other(format!("--device {}: {m}", d.path_on_host));
    let rel = d.path_in_container.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == "..") {
        return Err(fail(format!(
            "bad path in the container {:?}",
            d.path_in_container
        )));
    }
    match copy_node(Path::new(&d.path_on_host), &root.join(rel)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(fail("not a device node of the machine".into())),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Every character and block device under `dev` (the machine's /dev), made at the same
/// relative path under `target` (the container's /dev) unless a node is already there.
pub fn add_machine_devices(dev: &Path, target: &Path) -> io::Result<()> {
    for rel in device_paths(dev)? {
        let dst = target.join(&rel);
        if std::fs::symlink_metadata(&dst).is_ok() {
            continue;
        }
        copy_node(&dev.join(&rel), &dst)
            .map_err(|e| io::Error::other(format!("device /dev/{}: {e}", rel.display())))?;
    }
    Ok(())
}

/// The device nodes under `dev`, as paths relative to it, sorted; what [`NOT_COPIED`]
/// names at the top level is skipped, and links are not followed.
pub fn device_paths(dev: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        for entry in std::fs::read_dir(dev.join(&rel))? {
            let entry = entry?;
            let name = rel.join(entry.file_name());
            if rel.as_os_str().is_empty() && NOT_COPIED.iter().any(|n| entry.file_name() == *n) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(name);
            } else if kind.is_char_device() || kind.is_block_device() {
                found.push(name);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Makes `dst` a node like `src` (type, numbers, mode, owner); `Ok(false)` when `src` is
/// not a device node.
fn copy_node(src: &Path, dst: &Path) -> io::Result<bool> {
    let meta = std::fs::metadata(src)?;
    let kind = match meta.file_type() {
        t if t.is_char_device() => NodeKind::Char,
        t if t.is_block_device() => NodeKind::Block,
        _ => return Ok(false),
    };
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let _ = std::fs::remove_file(dst);
    let rdev = meta.rdev();
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    let mode = meta.mode() & 0o7777;
    sys::make_node(dst, kind, mode, major, minor)?;
    // mknod's mode is cut by the umask.
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))?;
    std::os::unix::fs::chown(dst, Some(meta.uid()), Some(meta.gid()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_device_nodes_but_not_the_containers_own_mounts() {
        // The test machine's /dev: its null device is always there, pts never listed.
        let found = device_paths(Path::new("/dev")).unwrap();
        assert!(found.contains(&PathBuf::from("null")), "{found:?}");
        assert!(found
            .iter()
            .all(|p| !p.starts_with("pts") && !p.starts_with("shm")));
        assert!(!found.contains(&PathBuf::from("console")));
        // A folder of plain files has none.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/file"), "x").unwrap();
        assert!(device_paths(dir.path()).unwrap().is_empty());
    }
}
