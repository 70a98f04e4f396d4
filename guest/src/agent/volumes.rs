//! `RemoveVolume`: deleting a named volume's data, on the blocking pool, answered by
//! exactly one `VolumeRemoved` (a failure or a panic included).

use std::path::{Path, PathBuf};

use berth_protocol::GuestMessage;

use super::control::Replies;

/// The directory of volume `name` under `volumes_dir`; the name must be a Docker volume
/// name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`), so it is one safe path component.
pub fn volume_dir(volumes_dir: &Path, name: &str) -> Result<PathBuf, String> {
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    match ok {
        true => Ok(volumes_dir.join(name)),
        false => Err(format!("invalid volume name {name:?}")),
    }
}

/// Deletes the volume's directory; one that does not exist counts as deleted.
pub fn remove(volumes_dir: &Path, name: &str) -> Result<(), String> {
    let dir = volume_dir(volumes_dir, name)?;
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("deleting {}: {e}", dir.display())),
    }
}

pub(super) fn spawn(replies: Replies, volumes_dir: PathBuf, request_id: u64, name: String) {
    tokio::spawn(async move {
        let work = tokio::task::spawn_blocking(move || remove(&volumes_dir, &name));
        let error = match work.await {
            Ok(result) => result.err(),
            Err(_panic) => Some("the agent failed while deleting the volume".into()),
        };
        replies.send(GuestMessage::VolumeRemoved { request_id, error });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_named_volumes() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("vol1/_data/sub")).unwrap();
        std::fs::write(tmp.path().join("vol1/_data/sub/f"), "x").unwrap();
        remove(tmp.path(), "vol1").unwrap();
        assert!(!tmp.path().join("vol1").exists());
        remove(tmp.path(), "never-made").unwrap();
        for bad in ["..", "../x", "a/b", "", "x", ".hidden"] {
            assert!(remove(tmp.path(), bad).is_err(), "{bad:?}");
        }
        assert!(tmp.path().exists());
    }
}
