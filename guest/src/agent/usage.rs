//! `DiskUsage`: the bytes of each container's writable layer and each volume, walked on
//! the blocking pool and answered by exactly one `DiskUsage` (empty lists if the walk
//! failed or panicked: sizes are a report, never a reason to fail).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_protocol::GuestMessage;

use super::control::Replies;

/// The apparent size of every file under `dir` (symlinks as their target text, each
/// inode once), without following symlinks or crossing into other file systems.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.dev() != top.dev() {
                continue;
            }
            if meta.is_dir() {
                stack.push(entry.path());
            } else if seen.insert(meta.ino()) {
                total += meta.len();
            }
        }
    }
    total
}

/// (name, bytes) of each directory `parent/<name>/<sub>` (`sub` empty: the entry itself).
pub fn sizes_under(parent: &Path, sub: &str) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut out: Vec<(String, u64)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = match sub {
                "" => e.path(),
                sub => e.path().join(sub),
            };
            (name, dir_size(&path))
        })
        .collect();
    out.sort();
    out
}

pub(super) fn spawn(
    replies: Replies,
    containers_dir: PathBuf,
    volumes_dir: PathBuf,
    request_id: u64,
) {
    tokio::spawn(async move {
        let work = tokio::task::spawn_blocking(move || {
            (
                sizes_under(&containers_dir, "upper"),
                sizes_under(&volumes_dir, ""),
            )
        });
        let (containers, volumes) = work.await.unwrap_or_default();
        replies.send(GuestMessage::DiskUsage {
            request_id,
            containers,
            volumes,
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_each_file_once_and_every_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let upper = tmp.path().join("c1/upper/etc");
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::write(upper.join("a"), vec![0u8; 1000]).unwrap();
        std::fs::hard_link(upper.join("a"), upper.join("b")).unwrap();
        std::fs::write(upper.join("c"), b"12345").unwrap();
        std::fs::create_dir_all(tmp.path().join("c2")).unwrap();
        assert_eq!(
            sizes_under(tmp.path(), "upper"),
            vec![("c1".to_string(), 1005), ("c2".to_string(), 0)]
        );
        assert_eq!(dir_size(&tmp.path().join("missing")), 0);
    }
}
