//! A container's program, read ahead from the layer cache. On a cold machine the layers'
//! files are on the disk, and every read of an emulated disk costs about a millisecond:
//! busybox's exec and run in a cold machine's first container took 26 ms, of which about
//! 10 went to reading it (16 with the file read beforehand). So while the container's
//! network and directories are made, the agent asks the kernel to read the program that
//! its command names (found in its PATH, through the layers, as its exec will find it);
//! the exec then finds it in the page cache. Only a hint: a program not found here (in a
//! volume, behind a symlink to another layer) is read by the exec as before.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::changes::is_whiteout;
use super::launch::candidates;
use super::mounts::resolve_in_root;

/// How much of the program is read ahead: all of a usual one, the start of a huge one
/// (its exec may touch little of it).
const READ_AHEAD_BYTES: i64 = 8 << 20;

/// Starts reading ahead the program `argv0` of a container whose layers are `lowerdirs`
/// (the top one first), looked up in `path` (a PATH value) as its exec will, and from
/// `cwd` (its working directory) when it is a relative path.
pub fn start(lowerdirs: Vec<PathBuf>, argv0: String, path: String, cwd: Option<String>) {
    tokio::task::spawn_blocking(move || {
        let argv0 = match (argv0.contains('/') && !argv0.starts_with('/'), cwd) {
            (true, Some(cwd)) => format!("{}/{argv0}", cwd.trim_end_matches('/')),
            _ => argv0,
        };
        if let Some(program) = find(&lowerdirs, &argv0, &path) {
            if let Err(e) = read_ahead(&program) {
                tracing::debug!("reading {} ahead: {e}", program.display());
            }
        }
    });
}

/// The file in the layers that the container's exec of `program` would run: the first of
/// its candidates (`launch::candidates`) that a layer holds, the upper layers first; a
/// whiteout in an upper layer hides the lower ones' file.
pub fn find(lowerdirs: &[PathBuf], program: &str, path: &str) -> Option<PathBuf> {
    for candidate in candidates(program, path) {
        let candidate = candidate.to_string_lossy();
        for layer in lowerdirs {
            let Ok(file) = resolve_in_root(layer, &candidate) else {
                break;
            };
            match std::fs::symlink_metadata(&file) {
                Ok(m) if m.file_type().is_file() => return Some(file),
                // Deleted in this layer, so not in the ones below.
                Ok(m) if is_whiteout(&m) => break,
                _ => {}
            }
        }
    }
    None
}

/// Asks the kernel to read `file` (up to [`READ_AHEAD_BYTES`]) into the page cache,
/// without waiting for it.
fn read_ahead(file: &Path) -> std::io::Result<()> {
    let f = std::fs::File::open(file)?;
    nix::fcntl::posix_fadvise(
        f.as_raw_fd(),
        0,
        READ_AHEAD_BYTES,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
    )
    .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let (upper, lower) = (dir.path().join("upper"), dir.path().join("lower"));
        for d in [&upper, &lower] {
            std::fs::create_dir_all(d.join("bin")).unwrap();
            std::fs::create_dir_all(d.join("usr/bin")).unwrap();
        }
        std::fs::write(lower.join("bin/busybox"), "ELF").unwrap();
        std::os::unix::fs::symlink("busybox", lower.join("bin/true")).unwrap();
        std::fs::write(lower.join("usr/bin/tool"), "old").unwrap();
        std::fs::write(upper.join("usr/bin/tool"), "new").unwrap();
        std::fs::write(lower.join("bin/gone"), "deleted above").unwrap();
        nix::sys::stat::mknod(
            &upper.join("bin/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        (dir, vec![upper, lower])
    }

    #[test]
    fn finds_the_program_as_the_exec_would() {
        let (_dir, dirs) = layers();
        let path = "/usr/local/bin:/usr/bin:/bin";
        // Through the PATH and the applet's symlink, to the lower layer's file.
        assert_eq!(find(&dirs, "true", path), Some(dirs[1].join("bin/busybox")));
        // The upper layer's copy wins.
        assert_eq!(
            find(&dirs, "tool", path),
            Some(dirs[0].join("usr/bin/tool"))
        );
        assert_eq!(
            find(&dirs, "/bin/busybox", ""),
            Some(dirs[1].join("bin/busybox"))
        );
        // A whiteout hides the lower file; a missing one is not found.
        assert_eq!(find(&dirs, "gone", path), None);
        assert_eq!(find(&dirs, "missing", path), None);
        assert_eq!(find(&dirs, "true", ""), None);
    }

    #[test]
    fn reads_ahead_a_file_and_fails_on_a_missing_one() {
        let (_dir, dirs) = layers();
        read_ahead(&dirs[1].join("bin/busybox")).unwrap();
        assert!(read_ahead(&dirs[1].join("bin/nope")).is_err());
    }
}
