//! `docker cp` inside a running container: the exec shim, in the container's mount
//! namespace, stats a path, writes a tar of it to stdout, or extracts a tar from stdin.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use berth_protocol::{Builtin, PathStat};

/// Runs one builtin; (exit code, message for stderr, empty on success).
pub fn run(op: &Builtin) -> (i32, String) {
    let result = match op {
        Builtin::Stat { path } => stat(Path::new(path)).and_then(|s| {
            let json = serde_json::to_string(&s).map_err(io::Error::other)?;
            let mut out = io::stdout().lock();
            writeln!(out, "{json}")?;
            out.flush()
        }),
        Builtin::ArchiveGet { path } => archive_get(Path::new(path)),
        Builtin::ArchivePut {
            path,
            no_overwrite_dir_non_dir,
            copy_uid_gid,
        } => archive_put(Path::new(path), *no_overwrite_dir_non_dir, *copy_uid_gid),
        Builtin::Export => export(),
        // Done by the exec shim before it joins the container (`join::main`).
        Builtin::LayerTar | Builtin::Changes => Err(io::Error::other("not a mount-side builtin")),
    };
    match result {
        Ok(()) => (0, String::new()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Builtin::NOT_FOUND, e.to_string()),
        Err(e) => (1, e.to_string()),
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("Could not find the file {} in container", path.display()),
    )
}

/// The path's own metadata (a final symlink is not followed).
pub fn stat(path: &Path) -> io::Result<PathStat> {
    let meta = fs::symlink_metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => not_found(path),
        _ => e,
    })?;
    let link_target = match meta.file_type().is_symlink() {
        true => fs::read_link(path)?.to_string_lossy().into_owned(),
        false => String::new(),
    };
    Ok(PathStat {
        name: base_name(path),
        size: meta.size(),
        mode: meta.mode(),
        mtime_secs: meta.mtime(),
        mtime_nanos: meta.mtime_nsec() as u32,
        link_target,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// The last component, or `/` for the root.
fn base_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into())
}

fn archive_get(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path).map_err(|_| not_found(path))?;
    let out = BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let name = match base_name(path).as_str() {
        "/" => ".".to_string(),
        n => n.to_string(),
    };
    if meta.is_dir() {
        tar.append_dir_all(&name, path)?;
    } else {
        tar.append_path_with_name(path, &name)?;
    }
    tar.into_inner()?.flush()
}

/// The root file system as a tar, staying on the root's own file system: a mount point
/// is there as an empty directory, its contents are not.
fn export() -> io::Result<()> {
    let out = BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let root_dev = fs::symlink_metadata("/")?.dev();
    let mut stack = vec![PathBuf::from("/")];
    while let Some(dir) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names.into_iter().rev() {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path)?;
            let rel = path.strip_prefix("/").unwrap_or(&path);
            if meta.is_dir() {
                let mut header = tar::Header::new_gnu();
                header.set_metadata(&meta);
                tar.append_data(&mut header, rel, io::empty())?;
                if meta.dev() == root_dev {
                    stack.push(path);
                }
            } else if meta.dev() == root_dev {
                tar.append_path_with_name(&path, rel)?;
            }
        }
    }
    tar.into_inner()?.flush()
}

fn archive_put(dir: &Path, no_overwrite_dir_non_dir: bool, copy_uid_gid: bool) -> io::Result<()> {
    let meta = fs::metadata(dir).map_err(|_| not_found(dir))?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "extraction point is not a directory: {}",
            dir.display()
        )));
    }
    let mut archive = tar::Archive::new(io::stdin().lock());
    archive.set_preserve_permissions(true);
    // Without it, the files are the extracting root's, as Docker makes them.
    archive.set_preserve_ownerships(copy_uid_gid);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let rel = entry.path()?.into_owned();
        let Some(target) = inside(dir, &rel) else {
            return Err(io::Error::other(format!(
                "the archive's path {} leaves the target",
                rel.display()
            )));
        };
        if no_overwrite_dir_non_dir {
            if let Ok(existing) = fs::symlink_metadata(&target) {
                let new_is_dir = entry.header().entry_type().is_dir();
                if existing.is_dir() != new_is_dir {
                    return Err(io::Error::other(format!(
                        "cannot overwrite {} {} with a {}",
                        if existing.is_dir() {
                            "directory"
                        } else {
                            "non-directory"
                        },
                        target.display(),
                        if new_is_dir {
                            "directory"
                        } else {
                            "non-directory"
                        },
                    )));
                }
            }
        }
        entry.unpack_in(dir)?;
    }
    Ok(())
}

/// `rel` under `dir`, written without `.` or `..`; `None` when it climbs out.
fn inside(dir: &Path, rel: &Path) -> Option<PathBuf> {
    let mut out = dir.to_path_buf();
    let mut depth = 0usize;
    for c in rel.components() {
        match c {
            Component::Normal(n) => {
                out.push(n);
                depth += 1;
            }
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir if depth > 0 => {
                out.pop();
                depth -= 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_stay_inside_the_target() {
        let d = Path::new("/t");
        assert_eq!(inside(d, Path::new("a/b")), Some(PathBuf::from("/t/a/b")));
        assert_eq!(
            inside(d, Path::new("./a/../b")),
            Some(PathBuf::from("/t/b"))
        );
        assert_eq!(inside(d, Path::new("../x")), None);
    }

    #[test]
    fn stat_names_the_file_and_its_link() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, b"abc").unwrap();
        std::os::unix::fs::symlink("f", tmp.path().join("l")).unwrap();
        let s = stat(&f).unwrap();
        assert_eq!((s.name.as_str(), s.size), ("f", 3));
        assert_eq!(s.mode & 0o170000, 0o100000);
        assert_eq!(stat(&tmp.path().join("l")).unwrap().link_target, "f");
        assert_eq!(
            stat(&tmp.path().join("nope")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
