//! What a running container leaves in its state directory for a later `docker exec`:
//! `spec.json` (its [`ShimSpec`], written by the agent before the shim starts) and
//! `init.pid` (the guest pid of its first process, written by the shim once that process
//! has exec'd its command). Both are written atomically (temp file + rename), so a reader
//! sees a whole file or none. Both go when the run ends (`forget_run`); the directory
//! itself, with the container's changes in `upper/`, goes when the container is removed
//! (`remove_files`).

use std::io;
use std::path::Path;

use berth_protocol::ContainerSet;

use super::ShimSpec;

/// Container directories are made and chosen for deletion under this lock. A container's
/// start holds it shared from just before it makes its directories (beside its network,
/// which it may wait for) until its spec is saved (from then on the clean-up of left-overs
/// skips it); that clean-up holds it alone. Nothing takes it while holding the network
/// lock, so the two cannot deadlock. So a
/// clean-up that the daemon asked for before it knew of a container never takes that
/// container's directories, made a moment ago, for a left-over.
static FILES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Held while a container's directories are made and its spec saved.
pub async fn setting_up() -> tokio::sync::RwLockReadGuard<'static, ()> {
    FILES.read().await
}

/// [`remove_files`] on a blocking thread; the clean-up of left-overs (`AllBut`) runs while
/// no container is being set up.
pub async fn remove_files_in_turn(
    containers_dir: std::path::PathBuf,
    which: ContainerSet,
) -> Result<(), String> {
    let alone = match which {
        ContainerSet::AllBut(_) => Some(FILES.write().await),
        ContainerSet::These(_) => None,
    };
    let work = tokio::task::spawn_blocking(move || {
        let _alone = alone;
        remove_files(&containers_dir, &which)
    });
    work.await
        .unwrap_or_else(|_panic| Err("the agent failed while deleting container files".into()))
}

/// The container's spec, in its state directory.
pub const SPEC_FILE: &str = "spec.json";
/// The guest pid of the container's first process, in its state directory.
pub const INIT_PID_FILE: &str = "init.pid";

/// Writes `contents` to `path` through a temp file and a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Saves `spec` as `<spec.dir>/spec.json`.
pub fn save_spec(spec: &ShimSpec) -> io::Result<()> {
    let json = serde_json::to_vec(spec).map_err(io::Error::other)?;
    write_atomic(&spec.dir.join(SPEC_FILE), &json)
}

/// Records the container's first process as `<dir>/init.pid`.
pub fn save_init_pid(dir: &Path, pid: u32) -> io::Result<()> {
    write_atomic(&dir.join(INIT_PID_FILE), pid.to_string().as_bytes())
}

/// The spec saved in `dir`; `None` when there is none (no such container).
pub fn load_spec(dir: &Path) -> io::Result<Option<ShimSpec>> {
    match std::fs::read(dir.join(SPEC_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{SPEC_FILE}: {e}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The pid recorded in `dir`; `None` while the container is still starting (or has none).
pub fn load_init_pid(dir: &Path) -> io::Result<Option<u32>> {
    match std::fs::read_to_string(dir.join(INIT_PID_FILE)) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{INIT_PID_FILE}: not a pid: {text:?}"),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the files that say a container runs (after its run, or at boot for runs the
/// guest's last power-off ended).
pub fn forget_run(dir: &Path) {
    for name in [INIT_PID_FILE, SPEC_FILE] {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// Deletes the state directories under `containers_dir` of the containers `which` names,
/// skipping any that runs (or is starting: it has a `spec.json`). Every directory is
/// tried; the error lists those that could not be deleted.
pub fn remove_files(containers_dir: &Path, which: &ContainerSet) -> Result<(), String> {
    let ids: Vec<String> = match which {
        ContainerSet::These(ids) => ids.clone(),
        ContainerSet::AllBut(keep) => match std::fs::read_dir(containers_dir) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|id| !keep.contains(id))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", containers_dir.display())),
        },
    };
    let mut failed = Vec::new();
    for id in ids {
        if !super::valid_id(&id) {
            failed.push(format!("{id:?}: not a container id"));
            continue;
        }
        let dir = containers_dir.join(&id);
        if dir.join(SPEC_FILE).exists() {
            continue;
        }
        let _ = crate::sys::unmount(&dir.join("pts"));
        let _ = crate::sys::unmount(&dir.join("shm"));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => failed.push(format!("{}: {e}", &id[..12])),
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(format!("deleting container files: {}", failed.join("; "))),
    }
}

/// Whether `pid` (read under `proc`, normally `/proc`) is a live process, not a zombie,
/// in the cgroup of container `id`: a pid reused by another process does not count.
pub fn is_container_process(proc: &Path, pid: u32, id: &str) -> bool {
    let dir = proc.join(pid.to_string());
    let alive = std::fs::read_to_string(dir.join("stat"))
        .ok()
        .and_then(|stat| super::top::parse_stat(&stat))
        .is_some_and(|s| !matches!(s.state, 'Z' | 'X' | 'x'));
    let suffix = format!("/{id}");
    let in_cgroup = std::fs::read_to_string(dir.join("cgroup")).is_ok_and(|t| {
        t.lines()
            .filter_map(|l| l.strip_prefix("0::"))
            .any(|path| path.trim_end().ends_with(&suffix))
    });
    alive && in_cgroup
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn spec(dir: &Path) -> ShimSpec {
        ShimSpec {
            id: ID.into(),
            lowerdirs: vec!["/l".into()],
            dir: dir.to_path_buf(),
            argv: vec!["sh".into()],
            env: vec!["A=1".into()],
            cwd: Some("/srv".into()),
            hostname: "h".into(),
            user: Some("www".into()),
            resources: Default::default(),
            security: Default::default(),
            netns: super::super::NsEntry::Join("/run/berth/netns/x".into()),
            hosts: Some("127.0.0.1\tlocalhost\n".into()),
            resolv_conf: None,
            mounts: vec![super::super::mounts::BindMount {
                source: "/var/lib/berth/volumes/v/_data".into(),
                target: "/data".into(),
                read_only: true,
                copy_up: true,
            }],
            tmpfs: vec![],
            read_only_rootfs: true,
            process: berth_protocol::ProcessOptions {
                init: true,
                ..Default::default()
            },
            devpts: true,
            network_gate: true,
            sharing: Default::default(),
        }
    }

    #[test]
    fn spec_and_pid_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(load_spec(tmp.path()).unwrap(), None);
        assert_eq!(load_init_pid(tmp.path()).unwrap(), None);
        let s = spec(tmp.path());
        save_spec(&s).unwrap();
        save_init_pid(tmp.path(), 4242).unwrap();
        assert_eq!(load_spec(tmp.path()).unwrap(), Some(s));
        assert_eq!(load_init_pid(tmp.path()).unwrap(), Some(4242));
        // No temp file is left behind.
        let mut names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [INIT_PID_FILE, SPEC_FILE]);
    }

    #[test]
    fn a_finished_run_keeps_the_files_until_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let other = "f".repeat(64);
        let (dir, other_dir) = (tmp.path().join(ID), tmp.path().join(&other));
        let s = spec(&dir);
        s.prepare().unwrap();
        std::fs::write(s.upper().join("made"), "x").unwrap();
        save_init_pid(&dir, 7).unwrap();
        // A running container is never removed.
        remove_files(tmp.path(), &ContainerSet::These(vec![ID.into()])).unwrap();
        assert!(s.upper().join("made").is_file());
        forget_run(&dir);
        assert_eq!(load_spec(&dir).unwrap(), None);
        assert_eq!(load_init_pid(&dir).unwrap(), None);
        assert!(
            s.upper().join("made").is_file(),
            "a stopped container keeps its changes"
        );
        std::fs::create_dir_all(other_dir.join("upper")).unwrap();
        remove_files(tmp.path(), &ContainerSet::AllBut(vec![ID.into()])).unwrap();
        assert!(
            !other_dir.exists(),
            "a container the daemon does not know goes"
        );
        assert!(dir.is_dir());
        remove_files(tmp.path(), &ContainerSet::These(vec![ID.into()])).unwrap();
        assert!(!dir.exists());
        let bad = remove_files(tmp.path(), &ContainerSet::These(vec!["../x".into()]));
        assert!(bad.unwrap_err().contains("not a container id"));
    }

    /// The daemon asks for the clean-up of left-overs with the containers it knew then; one
    /// it creates next may be making its directories when the clean-up runs.
    #[tokio::test]
    async fn the_clean_up_of_left_overs_never_takes_a_container_being_set_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(ID);
        let setting_up = setting_up().await;
        std::fs::create_dir_all(dir.join("upper")).unwrap();
        let clean_up = tokio::spawn(remove_files_in_turn(
            tmp.path().to_path_buf(),
            ContainerSet::AllBut(Vec::new()),
        ));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            dir.join("upper").is_dir(),
            "the clean-up took a container whose start was under way for a left-over"
        );
        save_spec(&spec(&dir)).unwrap();
        drop(setting_up);
        clean_up.await.unwrap().unwrap();
        assert!(
            dir.join("upper").is_dir(),
            "a container with a spec is kept"
        );
        // With no start under way, the same directory without its spec is a left-over.
        forget_run(&dir);
        remove_files_in_turn(tmp.path().to_path_buf(), ContainerSet::AllBut(Vec::new()))
            .await
            .unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(INIT_PID_FILE), "abc").unwrap();
        std::fs::write(tmp.path().join(SPEC_FILE), "{").unwrap();
        assert!(load_init_pid(tmp.path()).is_err());
        assert!(load_spec(tmp.path()).is_err());
    }

    #[test]
    fn container_processes_are_live_and_in_the_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let proc = tmp.path();
        let add = |pid: u32, state: char, cgroup: &str| {
            let d = proc.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            let stat = format!("{pid} (sh) {state} 1 1 1 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 500 0 0");
            std::fs::write(d.join("stat"), stat).unwrap();
            std::fs::write(d.join("cgroup"), cgroup).unwrap();
        };
        add(10, 'S', &format!("0::/berth/{ID}\n"));
        add(11, 'Z', &format!("0::/berth/{ID}\n"));
        add(12, 'R', "0::/\n");
        assert!(is_container_process(proc, 10, ID));
        assert!(!is_container_process(proc, 11, ID));
        assert!(!is_container_process(proc, 12, ID));
        assert!(!is_container_process(proc, 13, ID));
    }
}
