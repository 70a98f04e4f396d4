//! Unpacking an image layer (a tar stream, gzip or not) into a directory of the layer
//! cache, safely: the tar comes from an image, which is untrusted input.
//!
//! - No entry can write outside the layer directory: `..` components refuse the layer,
//!   absolute names are taken relative to the layer root, and no parent of an entry may be
//!   a symlink (the walk never follows one), so a symlink in the layer cannot redirect a
//!   later entry. Symlinks themselves may point anywhere: they are only resolved inside
//!   the container, after pivot_root.
//! - Hardlinks must name an earlier entry inside the layer, reached the same safe way.
//! - Device nodes and FIFOs are created as Docker does for a root daemon.
//! - Whiteouts become overlayfs whiteouts: `.wh.NAME` a 0:0 character device `NAME`, and
//!   `.wh..wh..opq` the `trusted.overlay.opaque=y` attribute on its directory.

use std::ffi::CStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{lchown, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::sys::{self, NodeKind};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer entry {0:?} escapes the layer (a `..` component)")]
    Escape(String),
    #[error("layer entry {entry:?} goes through the symlink {link:?}")]
    ThroughSymlink { entry: String, link: String },
    #[error("layer hardlink {entry:?} points at {target:?}, which is not in the layer")]
    BadHardlink { entry: String, target: String },
    #[error("layer entry {entry:?}")]
    Entry {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the layer")]
    Read(#[source] io::Error),
}

/// What an unpack did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: u64,
    pub whiteouts: u64,
}

/// Unpacks a layer from `input` (a plain tar, or gzip- or zstd-compressed) into `dest`,
/// which must exist. On error the directory is left partly written: the caller discards it.
pub fn unpack(input: impl Read, dest: &Path) -> Result<Unpacked, LayerError> {
    let mut input = BufReader::new(input);
    let head = input.fill_buf().map_err(LayerError::Read)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        unpack_tar(flate2::read::MultiGzDecoder::new(input), dest)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let zstd = ruzstd::decoding::StreamingDecoder::new(input).map_err(|e| {
            LayerError::Read(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("zstd: {e}"),
            ))
        })?;
        unpack_tar(zstd, dest)
    } else {
        unpack_tar(input, dest)
    }
}

fn unpack_tar(input: impl Read, dest: &Path) -> Result<Unpacked, LayerError> {
    let mut archive = tar::Archive::new(input);
    let mut done = Unpacked::default();
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    for entry in archive.entries().map_err(LayerError::Read)? {
        let mut entry = entry.map_err(LayerError::Read)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = relative(&name)?;
        if rel.as_os_str().is_empty() {
            continue; // the root itself
        }
        let at = |source| LayerError::Entry {
            entry: name.clone(),
            source,
        };
        let parent = safe_parent(dest, &rel, &name)?;
        let file_name = rel
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if file_name == OPAQUE {
            sys::set_xattr(&parent, OPAQUE_XATTR, b"y").map_err(at)?;
            done.whiteouts += 1;
            continue;
        }
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            let target = parent.join(hidden);
            remove_existing(&target).map_err(at)?;
            sys::make_node(&target, NodeKind::Char, 0, 0, 0).map_err(at)?;
            done.whiteouts += 1;
            continue;
        }
        let path = parent.join(&file_name);
        let header = entry.header().clone();
        let mode = header.mode().map_err(at)? & 0o7777;
        let kind = header.entry_type();
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_existing(&path).map_err(at)?;
                        fs::create_dir(&path).map_err(at)?;
                    }
                    Err(_) => fs::create_dir(&path).map_err(at)?,
                }
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(at)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_existing(&path).map_err(at)?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&path)
                    .map_err(at)?;
                io::copy(&mut entry, &mut file).map_err(at)?;
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(at)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(at)?
                    .unwrap_or_default()
                    .into_owned();
                remove_existing(&path).map_err(at)?;
                std::os::unix::fs::symlink(target, &path).map_err(at)?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name().map_err(at)?.unwrap_or_default();
                let target_name = target.to_string_lossy().into_owned();
                let bad = || LayerError::BadHardlink {
                    entry: name.clone(),
                    target: target_name.clone(),
                };
                let target_rel = relative(&target_name).map_err(|_| bad())?;
                let source = safe_parent(dest, &target_rel, &target_name)
                    .map_err(|_| bad())?
                    .join(target_rel.file_name().ok_or_else(bad)?);
                if fs::symlink_metadata(&source).is_err() {
                    return Err(bad());
                }
                remove_existing(&path).map_err(at)?;
                fs::hard_link(&source, &path).map_err(at)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let node = match kind {
                    tar::EntryType::Char => NodeKind::Char,
                    tar::EntryType::Block => NodeKind::Block,
                    _ => NodeKind::Fifo,
                };
                let major = header.device_major().map_err(at)?.unwrap_or(0);
                let minor = header.device_minor().map_err(at)?.unwrap_or(0);
                remove_existing(&path).map_err(at)?;
                sys::make_node(&path, node, mode, major.into(), minor.into()).map_err(at)?;
            }
            // PAX and GNU long-name records are consumed by the tar crate; anything else
            // (sockets, unknown types) is skipped, as Docker does.
            _ => continue,
        }
        let uid = header.uid().map_err(at)?;
        let gid = header.gid().map_err(at)?;
        lchown(&path, Some(uid as u32), Some(gid as u32)).map_err(at)?;
        if kind != tar::EntryType::Symlink && mode & 0o7000 != 0 {
            // chown clears setuid/setgid: put them back.
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(at)?;
        }
        let mtime = header.mtime().map_err(at)? as i64;
        match kind {
            // A directory's time changes with every entry made in it: set it last.
            tar::EntryType::Directory => dir_times.push((path, mtime)),
            // A hard link shares its inode's time, which its source's entry gave.
            tar::EntryType::Link => {}
            _ => sys::set_mtime(&path, mtime).map_err(at)?,
        }
        done.entries += 1;
    }
    for (path, mtime) in dir_times.iter().rev() {
        sys::set_mtime(path, *mtime).map_err(|source| LayerError::Entry {
            entry: path.display().to_string(),
            source,
        })?;
    }
    Ok(done)
}

/// The entry's path relative to the layer root; `..` anywhere refuses the layer.
fn relative(name: &str) -> Result<PathBuf, LayerError> {
    let mut rel = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(LayerError::Escape(name.to_string())),
        }
    }
    Ok(rel)
}

/// The directory an entry goes into, creating missing parents (0755) without ever
/// following a symlink: a parent that is a symlink refuses the entry.
fn safe_parent(dest: &Path, rel: &Path, name: &str) -> Result<PathBuf, LayerError> {
    let mut dir = dest.to_path_buf();
    let parents: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for part in parents {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(LayerError::ThroughSymlink {
                    entry: name.to_string(),
                    link: dir.strip_prefix(dest).unwrap_or(&dir).display().to_string(),
                })
            }
            Ok(_) => {
                remove_existing(&dir).map_err(|source| LayerError::Entry {
                    entry: name.into(),
                    source,
                })?;
                fs::create_dir(&dir).map_err(|source| LayerError::Entry {
                    entry: name.into(),
                    source,
                })?;
            }
            Err(_) => fs::create_dir(&dir).map_err(|source| LayerError::Entry {
                entry: name.into(),
                source,
            })?,
        }
    }
    Ok(dir)
}

/// Removes whatever is at `path` (a later entry replaces an earlier one, as in Docker).
fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
