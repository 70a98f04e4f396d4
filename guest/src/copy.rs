//! Copying a directory tree as it is: files, directories, symlinks and device nodes, with
//! their modes (used to seed a new volume with what the image has at its mount point).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::sys::{self, NodeKind};

/// Copies `from` to `to` (which must not exist), without following symlinks, keeping
/// modes and owners.
pub fn tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    let kind = meta.file_type();
    let mode = meta.mode() & 0o7777;
    if kind.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
        return std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()));
    } else if kind.is_dir() {
        fs::create_dir(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    } else if kind.is_file() {
        fs::copy(from, to)?;
        fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    } else if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() {
        let node = if kind.is_char_device() {
            NodeKind::Char
        } else if kind.is_block_device() {
            NodeKind::Block
        } else {
            NodeKind::Fifo
        };
        let rdev = meta.rdev();
        sys::make_node(
            to,
            node,
            mode,
            libc::major(rdev).into(),
            libc::minor(rdev).into(),
        )?;
    }
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    // chown clears set-id bits: put the mode back.
    if !kind.is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_dirs_and_symlinks_with_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/tool"), "x").unwrap();
        fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("tool", src.join("bin/sh")).unwrap();
        let dst = tmp.path().join("dst");
        tree(&src, &dst).unwrap();
        assert_eq!(fs::read_to_string(dst.join("bin/tool")).unwrap(), "x");
        assert_eq!(
            fs::metadata(dst.join("bin/tool")).unwrap().mode() & 0o777,
            0o755
        );
        assert_eq!(
            fs::read_link(dst.join("bin/sh")).unwrap(),
            Path::new("tool")
        );
    }
}
