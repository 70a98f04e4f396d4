//! A running container's changes, read from its overlay upper directory: as an image
//! layer tar (`docker commit`; overlay whiteouts become `.wh.` files) or as Docker's
//! change list (`docker diff`).

use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_protocol::Change;

/// Docker's whiteout prefix and opaque-directory marker.
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// What berth itself writes into every container's upper directory as it sets the
/// container up (Docker keeps these outside the container's layer): the files of /etc it
/// owns, and the mount points it makes. Left out of the changes, as Docker's.
pub fn setup_paths(mount_targets: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = [
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
        "dev",
        "proc",
        "sys",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    out.extend(
        mount_targets
            .iter()
            .map(|t| PathBuf::from(t.trim_start_matches('/'))),
    );
    out
}

/// The entries of `upper` that are the user's, not berth's setup: a setup path is left
/// out when the image did not have it (then berth made it), and so is a directory the
/// image had whose only changes were berth's.
fn user_entries(
    upper: &Path,
    lowerdirs: &[PathBuf],
    setup: &[PathBuf],
) -> io::Result<Vec<(PathBuf, u8)>> {
    let in_image = |rel: &Path| {
        lowerdirs
            .iter()
            .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
    };
    let mut entries = Vec::new();
    for rel in walk(upper)? {
        let meta = fs::symlink_metadata(upper.join(&rel))?;
        let kind = if is_whiteout(&meta) {
            2
        } else if in_image(&rel) {
            0
        } else {
            1
        };
        let berths = setup.iter().any(|s| rel.starts_with(s))
            && (kind == 1
                || ["etc/hostname", "etc/hosts", "etc/resolv.conf"]
                    .iter()
                    .any(|f| rel == Path::new(f)));
        if !berths {
            entries.push((rel, kind, meta.is_dir()));
        }
    }
    // A directory of the image kept only because berth changed something in it.
    let kept: Vec<(PathBuf, u8)> = entries
        .iter()
        .filter(|(rel, kind, dir)| {
            !(*dir && *kind == 0)
                || entries
                    .iter()
                    .any(|(other, _, _)| other != rel && other.starts_with(rel))
        })
        .map(|(rel, kind, _)| (rel.clone(), *kind))
        .collect();
    Ok(kept)
}

/// Every entry under `upper`, parents before children, by relative path.
fn walk(upper: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(upper.join(&rel))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names.into_iter().rev() {
            let child = rel.join(name);
            if fs::symlink_metadata(upper.join(&child))?.is_dir() {
                stack.push(child.clone());
            }
            out.push(child);
        }
    }
    out.sort();
    Ok(out)
}

/// An overlay whiteout: a character device 0:0.
pub(super) fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether overlayfs marked the directory opaque (its lower contents hidden).
fn is_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut value = [0u8; 2];
    for name in [c"trusted.overlay.opaque", c"user.overlay.opaque"] {
        // SAFETY: both strings are NUL-terminated and `value` is a valid buffer of its length.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n == 1 && value[0] == b'y' {
            return true;
        }
    }
    false
}

/// Writes the layer tar of `upper` to stdout.
pub fn layer_tar(upper: &Path, lowerdirs: &[PathBuf], setup: &[PathBuf]) -> io::Result<()> {
    let out = BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    for (rel, _) in user_entries(upper, lowerdirs, setup)? {
        let full = upper.join(&rel);
        let meta = fs::symlink_metadata(&full)?;
        if is_whiteout(&meta) {
            let name = rel.file_name().unwrap_or_default().to_string_lossy();
            let marker = rel.with_file_name(format!("{WHITEOUT}{name}"));
            empty_file(&mut tar, &marker)?;
            continue;
        }
        tar.append_path_with_name(&full, &rel)?;
        if meta.is_dir() && is_opaque(&full) {
            empty_file(&mut tar, &rel.join(OPAQUE))?;
        }
    }
    tar.into_inner()?.flush()
}

fn empty_file<W: Write>(tar: &mut tar::Builder<W>, path: &Path) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(0);
    header.set_mode(0o644);
    header.set_mtime(0);
    tar.append_data(&mut header, path, io::empty())
}

/// Docker's change list: whiteouts are deletions, entries the image has are
/// modifications, the rest additions.
pub fn changes(upper: &Path, lowerdirs: &[PathBuf], setup: &[PathBuf]) -> io::Result<Vec<Change>> {
    Ok(user_entries(upper, lowerdirs, setup)?
        .into_iter()
        .map(|(rel, kind)| Change {
            path: format!("/{}", rel.display()),
            kind,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_say_what_is_new_and_what_was_there() {
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = (tmp.path().join("lower"), tmp.path().join("upper"));
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("etc/passwd"), "root").unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/passwd"), "root\nuser").unwrap();
        fs::write(upper.join("etc/new"), "x").unwrap();
        // berth's own: /etc/hostname, a mount point it made, /proc.
        fs::write(upper.join("etc/hostname"), "h").unwrap();
        fs::create_dir_all(upper.join("data")).unwrap();
        fs::create_dir_all(upper.join("proc")).unwrap();
        let setup = setup_paths(&["/data"]);
        let got = changes(&upper, std::slice::from_ref(&lower), &setup).unwrap();
        let got: Vec<(String, u8)> = got.into_iter().map(|c| (c.path, c.kind)).collect();
        assert_eq!(
            got,
            [
                ("/etc".into(), 0),
                ("/etc/new".into(), 1),
                ("/etc/passwd".into(), 0)
            ]
        );
        // Only berth's files changed in /etc: nothing to show.
        fs::remove_file(upper.join("etc/new")).unwrap();
        fs::remove_file(upper.join("etc/passwd")).unwrap();
        assert_eq!(changes(&upper, &[lower], &setup).unwrap(), []);
    }
}
