//! A container's bind mounts (host folders, volumes): each source bind-mounted on its
//! target inside the new root, before the pivot. Targets are resolved inside the root:
//! the image is untrusted, so a symlink in it never leads a mount (or the file or
//! directory made for it) outside the container's root.

use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sys;

/// How many symlinks resolving one target may follow (as the kernel's ELOOP limit).
const MAX_SYMLINKS: usize = 40;

/// One bind mount, its source already a guest path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
    /// A named volume: when it is empty, it first gets what the image has at the target
    /// (Docker's copy-up), owners and modes included.
    #[serde(default)]
    pub copy_up: bool,
}

/// Mounts each of `mounts` in `root` (the container's root before the pivot), shallower
/// targets first (as Docker), so `/data` never hides a mount at `/data/sub`.
pub fn bind_all(root: &Path, mounts: &[BindMount]) -> io::Result<()> {
    for m in in_mount_order(mounts) {
        let fail = |e: io::Error| io::Error::new(e.kind(), format!("mount {}: {e}", m.target));
        let target = resolve_in_root(root, &m.target).map_err(fail)?;
        let is_dir = std::fs::metadata(&m.source)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", m.source.display())))
            .map_err(fail)?
            .is_dir();
        if m.copy_up && is_dir {
            copy_up(&target, &m.source).map_err(fail)?;
        }
        make_target(&target, is_dir).map_err(fail)?;
        sys::bind_mount(&m.source, &target, m.read_only)?;
    }
    Ok(())
}

/// Mounts a fresh tmpfs on each target (resolved inside `root`, made when missing).
pub fn tmpfs_all(root: &Path, mounts: &[berth_protocol::Tmpfs]) -> io::Result<()> {
    use nix::mount::MsFlags;
    for t in mounts {
        let fail = |e: io::Error| io::Error::new(e.kind(), format!("tmpfs {}: {e}", t.target));
        let target = resolve_in_root(root, &t.target).map_err(fail)?;
        make_target(&target, true).map_err(fail)?;
        let mut flags = MsFlags::empty();
        for (on, flag) in [
            (t.read_only, MsFlags::MS_RDONLY),
            (t.noexec, MsFlags::MS_NOEXEC),
            (t.nosuid, MsFlags::MS_NOSUID),
            (t.nodev, MsFlags::MS_NODEV),
        ] {
            if on {
                flags |= flag;
            }
        }
        let data = (!t.data.is_empty()).then_some(t.data.as_str());
        sys::mount_fs("tmpfs", &target.display().to_string(), "tmpfs", flags, data)
            .map_err(fail)?;
    }
    Ok(())
}

/// Fills the empty volume directory `volume` with what the image has at `target` (a
/// path already resolved inside the root): its entries, and the directory's own mode and
/// owner. Nothing happens when the volume has content or the image has no such directory.
fn copy_up(target: &Path, volume: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(meta) = std::fs::symlink_metadata(target) else {
        return Ok(());
    };
    if !meta.is_dir() || std::fs::read_dir(volume)?.next().is_some() {
        return Ok(());
    }
    for entry in std::fs::read_dir(target)? {
        let entry = entry?;
        crate::copy::tree(&entry.path(), &volume.join(entry.file_name()))?;
    }
    std::os::unix::fs::chown(volume, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(
        volume,
        std::fs::Permissions::from_mode(meta.mode() & 0o7777),
    )
}

/// `mounts` sorted by the depth of their targets (stable: equal depths keep their order).
fn in_mount_order(mounts: &[BindMount]) -> Vec<&BindMount> {
    let mut sorted: Vec<&BindMount> = mounts.iter().collect();
    sorted.sort_by_key(|m| Path::new(&m.target).components().count());
    sorted
}

/// Creates the mount point: a directory for a directory source, an empty file otherwise
/// (an existing one of the right kind is used as it is).
fn make_target(target: &Path, dir: bool) -> io::Result<()> {
    if dir {
        return std::fs::create_dir_all(target);
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Err(io::Error::other(
            "the source is a file, the target a directory",
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::File::create(target).map(drop),
        Err(e) => Err(e),
    }
}

/// `target` (absolute, inside the container) as a path under `root`, following the
/// symlinks it meets as the container would see them: absolute links start again at
/// `root`, and `..` never climbs above it. Components that do not exist are kept as
/// they are (they are created next, so no symlink can be among them).
pub fn resolve_in_root(root: &Path, target: &str) -> io::Result<PathBuf> {
    // Components still to walk, in reverse order (the next one last).
    let mut todo: Vec<PathBuf> = components(Path::new(target));
    let mut done = PathBuf::new(); // relative to root
    let mut followed = 0;
    while let Some(part) = todo.pop() {
        if part.as_os_str() == ".." {
            done.pop();
            continue;
        }
        let candidate = done.join(&part);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err(io::Error::other("too many levels of symbolic links"));
                }
                let link = std::fs::read_link(&full)?;
                if link.is_absolute() {
                    done = PathBuf::new();
                }
                todo.extend(components(&link));
            }
            _ => done = candidate,
        }
    }
    Ok(root.join(done))
}

/// The normal and `..` components of `p`, reversed (for a stack).
fn components(p: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn targets_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("usr/share")).unwrap();
        symlink("/usr/share", root.join("abs")).unwrap();
        symlink("../../../../etc", root.join("usr/up")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        let r = |t: &str| resolve_in_root(&root, t).unwrap();
        assert_eq!(r("/data"), root.join("data"));
        assert_eq!(r("/abs/x"), root.join("usr/share/x"));
        assert_eq!(r("/usr/up/passwd"), root.join("etc/passwd"));
        assert_eq!(r("/../../x"), root.join("x"));
        assert!(resolve_in_root(&root, "/loop1").is_err());
    }

    #[test]
    fn an_empty_volume_gets_the_images_files_once() {
        let tmp = tempfile::tempdir().unwrap();
        let (image, volume) = (tmp.path().join("image/etc/app"), tmp.path().join("vol"));
        std::fs::create_dir_all(image.join("conf.d")).unwrap();
        std::fs::write(image.join("conf.d/a.conf"), "a=1\n").unwrap();
        std::os::unix::fs::symlink("conf.d/a.conf", image.join("link")).unwrap();
        std::fs::create_dir_all(&volume).unwrap();
        copy_up(&image, &volume).unwrap();
        assert_eq!(
            std::fs::read_to_string(volume.join("conf.d/a.conf")).unwrap(),
            "a=1\n"
        );
        assert_eq!(
            std::fs::read_link(volume.join("link")).unwrap(),
            Path::new("conf.d/a.conf")
        );
        // A volume with content keeps it; a missing image directory copies nothing.
        std::fs::write(image.join("new"), "x").unwrap();
        copy_up(&image, &volume).unwrap();
        assert!(!volume.join("new").exists());
        let other = tmp.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        copy_up(&tmp.path().join("image/missing"), &other).unwrap();
        assert!(std::fs::read_dir(&other).unwrap().next().is_none());
    }

    #[test]
    fn parents_are_mounted_before_children() {
        let m = |target: &str| BindMount {
            source: "/s".into(),
            target: target.into(),
            read_only: false,
            copy_up: false,
        };
        let mounts = [m("/data/sub"), m("/data"), m("/x"), m("/a/b/c")];
        let order: Vec<&str> = in_mount_order(&mounts)
            .iter()
            .map(|m| m.target.as_str())
            .collect();
        assert_eq!(order, ["/data", "/x", "/data/sub", "/a/b/c"]);
    }

    #[test]
    fn targets_are_made_to_match_the_source() {
        let tmp = tempfile::tempdir().unwrap();
        make_target(&tmp.path().join("a/b"), true).unwrap();
        assert!(tmp.path().join("a/b").is_dir());
        make_target(&tmp.path().join("c/file"), false).unwrap();
        assert!(tmp.path().join("c/file").is_file());
        make_target(&tmp.path().join("c/file"), false).unwrap();
        assert!(make_target(&tmp.path().join("a/b"), false).is_err());
    }
}
