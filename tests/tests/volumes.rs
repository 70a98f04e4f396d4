//! Host folders (`-v`, `--mount`; virtio-9p and virtiofs) and named volumes on the machine's
//! disk.
#![cfg(feature = "vm")]

use std::path::Path;

use berth_tests::{ok, with_busybox, Berth, Outcome};

/// Runs a command that must fail; its stderr must contain every one of `wanted`.
fn fails(b: &Berth, args: &[&str], wanted: &[&str]) -> Outcome {
    let out = b.run(args, b"");
    assert_ne!(
        out.code,
        0,
        "berth {args:?} succeeded: {}",
        out.stdout_text()
    );
    for w in wanted {
        assert!(
            out.stderr.contains(w),
            "berth {args:?}: {w:?} not in {}",
            out.stderr
        );
    }
    out
}

#[test]
fn host_folders_both_ways_read_only_and_bad_sources() {
    let b = with_busybox();
    ok(&b, &["machine", "start", "--share-fs", "9p"]);
    // A temp dir is shared by default.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    if berth_tests::test_kernel() == "cloud" {
        // Debian's cloud kernel has no 9p: the container says so, and how to do without.
        let vol = format!("{d}:/data");
        fails(
            &b,
            &["run", "--rm", "-v", &vol, "busybox", "true"],
            &["has no 9p support", "--share-fs virtiofs"],
        );
        b.assert_nothing_left();
        berth_tests::skip(
            "Debian's cloud kernel has no 9p: host folders over 9p (both ways, read-only, \
             bad sources) were not checked, only that a 9p folder is refused naming \
             --share-fs virtiofs",
        );
        return;
    }
    std::fs::write(dir.path().join("from-host"), "written on the host\n").unwrap();
    let vol = format!("{d}:/data");
    let out = ok(
        &b,
        &[
            "run",
            "--rm",
            "-v",
            &vol,
            "busybox",
            "sh",
            "-c",
            "cat /data/from-host && echo written in the container > /data/from-guest",
        ],
    );
    assert_eq!(out.stdout_text(), "written on the host\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("from-guest")).unwrap(),
        "written in the container\n"
    );

    // Read-only, by -v and by --mount: reads work, writes fail with EROFS.
    let ro = format!("{d}:/data:ro");
    let mount = format!("type=bind,source={d},target=/data,readonly");
    for flags in [["-v", ro.as_str()], ["--mount", mount.as_str()]] {
        let mut args = vec!["run", "--rm"];
        args.extend(flags);
        args.extend(["busybox", "sh", "-c", "cat /data/from-host; touch /data/x"]);
        let out = fails(&b, &args, &["Read-only file system"]);
        assert_eq!(out.stdout_text(), "written on the host\n");
        assert!(!dir.path().join("x").exists());
    }

    // A file, and a -v folder that does not exist yet (created, as Docker).
    let file = format!("{d}/from-host:/etc/motd:ro");
    let out = ok(
        &b,
        &["run", "--rm", "-v", &file, "busybox", "cat", "/etc/motd"],
    );
    assert_eq!(out.stdout_text(), "written on the host\n");
    let fresh = format!("{d}/new/deeper:/w");
    ok(
        &b,
        &[
            "run",
            "--rm",
            "-v",
            &fresh,
            "busybox",
            "sh",
            "-c",
            "echo x > /w/f",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("new/deeper/f")).unwrap(),
        "x\n"
    );
    // Inspect shows Docker's Binds and Mounts.
    ok(
        &b,
        &["create", "--name", "shown", "-v", &ro, "busybox", "true"],
    );
    let seen = ok(
        &b,
        &[
            "inspect",
            "-f",
            "{{.HostConfig.Binds}} {{json .Mounts}}",
            "shown",
        ],
    )
    .stdout_text();
    assert!(seen.contains(&ro), "{seen}");
    assert!(
        seen.contains("\"Type\":\"bind\"") && seen.contains("\"RW\":false"),
        "{seen}"
    );

    // Bad sources: clear errors, exit 125, nothing run.
    let missing = format!("type=bind,source={d}/missing,target=/x");
    fails(
        &b,
        &["run", "--rm", "--mount", &missing, "busybox", "true"],
        &["bind source path does not exist", "/missing"],
    );
    let out = fails(
        &b,
        &["run", "--rm", "-v", "relative/path:/x", "busybox", "true"],
        &[
            "includes invalid characters for a local volume name",
            "use absolute path",
        ],
    );
    assert_eq!(out.code, 125);
    fails(
        &b,
        &["run", "--rm", "-v", &format!("{d}:data"), "busybox", "true"],
        &["must be absolute"],
    );
    // A folder outside the shares (home and temp dir) until the machine shares it.
    let outside_root = ["/dev/shm", "/var/tmp"]
        .into_iter()
        .find(|p| Path::new(p).is_dir())
        .expect("/dev/shm or /var/tmp");
    let outside = tempfile::tempdir_in(outside_root).unwrap();
    std::fs::write(outside.path().join("f"), "outside\n").unwrap();
    let o = outside.path().to_str().unwrap();
    let out_vol = format!("{o}:/o");
    fails(
        &b,
        &["run", "--rm", "-v", &out_vol, "busybox", "cat", "/o/f"],
        &["is not shared with machine default", "--share"],
    );
    ok(&b, &["machine", "stop", "-t", "0"]);
    ok(&b, &["machine", "start", "--share", o]);
    let out = ok(
        &b,
        &["run", "--rm", "-v", &out_vol, "busybox", "cat", "/o/f"],
    );
    assert_eq!(out.stdout_text(), "outside\n");
    b.assert_nothing_left();
}

#[test]
fn named_volumes_outlive_containers_and_restarts() {
    let b = with_busybox();
    ok(&b, &["machine", "start"]);
    // An empty named volume first gets what the image has at its target (copy-up).
    let assets = std::env::var("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    ok(&b, &["load", "-i", &format!("{assets}/images/httpd.tar")]);
    let page = ok(
        &b,
        &[
            "run",
            "--rm",
            "-v",
            "webroot:/www",
            "--entrypoint",
            "cat",
            "berth-test/httpd",
            "/www/index.html",
        ],
    );
    assert_eq!(page.stdout_text(), "<h1>hello from berth</h1>\n");
    let listed = ok(
        &b,
        &[
            "run",
            "--rm",
            "-v",
            "webroot:/w",
            "busybox",
            "sh",
            "-c",
            "echo changed > /w/index.html; ls -ln /w",
        ],
    );
    assert!(
        listed.stdout_text().contains("-rw-r--r--"),
        "modes are kept: {}",
        listed.stdout_text()
    );
    let kept = ok(
        &b,
        &[
            "run",
            "--rm",
            "-v",
            "webroot:/www",
            "--entrypoint",
            "cat",
            "berth-test/httpd",
            "/www/index.html",
        ],
    );
    assert_eq!(
        kept.stdout_text(),
        "changed\n",
        "a volume with content is not copied over again"
    );
    ok(&b, &["volume", "rm", "webroot"]);
    ok(
        &b,
        &[
            "run",
            "--name",
            "va",
            "-v",
            "vol1:/v",
            "busybox",
            "sh",
            "-c",
            "echo kept > /v/f",
        ],
    );
    let listed = ok(&b, &["volume", "ls", "-q"]).stdout_text();
    assert_eq!(listed, "vol1\n");
    // In use by a stopped container: refused, as Docker (409).
    fails(&b, &["volume", "rm", "vol1"], &["volume is in use", "vol1"]);
    ok(&b, &["rm", "va"]);
    ok(&b, &["machine", "stop", "-t", "0"]);
    ok(&b, &["machine", "start"]);
    let out = ok(
        &b,
        &["run", "--rm", "-v", "vol1:/v", "busybox", "cat", "/v/f"],
    );
    assert_eq!(out.stdout_text(), "kept\n");

    // Refused while a running container uses it, then removed with its data.
    ok(
        &b,
        &[
            "run", "-d", "--name", "user", "-v", "vol1:/v", "busybox", "sleep", "1000",
        ],
    );
    fails(&b, &["volume", "rm", "vol1"], &["volume is in use"]);
    ok(&b, &["rm", "-f", "user"]);
    assert_eq!(ok(&b, &["volume", "rm", "vol1"]).stdout_text(), "vol1\n");
    assert_eq!(ok(&b, &["volume", "ls", "-q"]).stdout_text(), "");
    fails(&b, &["volume", "inspect", "vol1"], &["no such volume"]);
    let out = ok(
        &b,
        &["run", "--rm", "-v", "vol1:/v", "busybox", "ls", "-A", "/v"],
    );
    assert_eq!(out.stdout_text(), "", "a new vol1 starts empty");

    // volume create/inspect, and anonymous volumes go with `rm -v`.
    assert_eq!(
        ok(&b, &["volume", "create", "made"]).stdout_text(),
        "made\n"
    );
    let inspect = ok(&b, &["volume", "inspect", "made"]).stdout_text();
    assert!(
        inspect.contains("\"Mountpoint\": \"/var/lib/berth/volumes/made/_data\""),
        "{inspect}"
    );
    ok(
        &b,
        &[
            "create", "--name", "anon", "-v", "/scratch", "busybox", "true",
        ],
    );
    let names = ok(&b, &["volume", "ls", "-q"]).stdout_text();
    assert_eq!(names.lines().count(), 3, "{names}");
    ok(&b, &["rm", "-v", "anon"]);
    let names = ok(&b, &["volume", "ls", "-q"]).stdout_text();
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["made", "vol1"]);
    b.assert_nothing_left();
}

#[test]
fn host_folders_over_virtiofs_both_ways_and_read_only() {
    let b = with_busybox();
    // `cargo xtask deps` installs virtiofsd; this machine serves its shares with it.
    ok(&b, &["machine", "start", "--share-fs", "virtiofs"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("from-host"), "over virtiofs\n").unwrap();
    let vol = format!("{d}:/data");
    let out = ok(
        &b,
        &[
            "run",
            "--rm",
            "-v",
            &vol,
            "busybox",
            "sh",
            "-c",
            "cat /data/from-host; echo back > /data/from-guest; grep ' /data ' /proc/mounts",
        ],
    );
    let text = out.stdout_text();
    assert!(text.starts_with("over virtiofs\n"), "{text}");
    assert!(text.contains(" /data virtiofs "), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("from-guest")).unwrap(),
        "back\n"
    );
    let ro = format!("{d}:/data:ro");
    fails(
        &b,
        &["run", "--rm", "-v", &ro, "busybox", "touch", "/data/x"],
        &["Read-only file system"],
    );
    assert!(!dir.path().join("x").exists());
    let bad = b.run(&["machine", "start", "other", "--share-fs", "ext9"], b"");
    assert_eq!(bad.code, 125);
    assert!(
        bad.stderr.contains("expected auto, 9p or virtiofs"),
        "{}",
        bad.stderr
    );
    a_lost_virtiofsd_is_refused_by_name_and_the_machine_goes_on(&b, dir.path());
    b.assert_nothing_left();
}

/// The virtiofsd serving `dir` on `b`'s machine ends (killed, as a crash would): QEMU
/// cannot serve the share again, and a lookup in it would wait forever. The daemon
/// notices and closes the share in the guest; a bind of it then fails at once, naming the
/// helper that ended, instead of hanging the machine; a container without it still
/// runs; and the machine still stops (its power-off's sync does not wait on the share).
fn a_lost_virtiofsd_is_refused_by_name_and_the_machine_goes_on(b: &Berth, dir: &Path) {
    let home = b.home().to_string_lossy().into_owned();
    let (pid, share) = berth_tests::processes_mentioning(&home)
        .into_iter()
        .find_map(|p| {
            let words: Vec<&str> = p.split(' ').collect();
            if !words.get(1)?.ends_with("virtiofsd") {
                return None;
            }
            let at = words.iter().position(|w| *w == "--shared-dir")?;
            let share = words.get(at + 1)?.to_string();
            let pid = words[0].trim_end_matches(':').to_string();
            dir.starts_with(&share).then_some((pid, share))
        })
        .unwrap_or_else(|| panic!("no virtiofsd of this machine serves {}", dir.display()));
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -KILL {pid}: {killed}");
    let ended = format!("virtiofsd for {share} ended (signal: 9");
    let log = b.home().join("machines/default/daemon.log");
    berth_tests::wait_for(
        &format!("the daemon to notice that the virtiofsd for {share} ended"),
        std::time::Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            match text.contains(&ended) && text.contains("the guest closed shared folder") {
                true => Ok(()),
                false => Err(text.lines().rev().take(5).collect::<Vec<_>>().join("\n")),
            }
        },
    );
    // Refused by name, not by the guest's lookup deadline ("did not answer within").
    let vol = format!("{}:/data", dir.display());
    let out = b.run(&["run", "--rm", "-v", &vol, "busybox", "true"], b"");
    assert_ne!(
        out.code, 0,
        "a bind of a share whose virtiofsd ended worked"
    );
    assert!(
        out.stderr.contains(&ended) && out.stderr.contains("stop and start the machine"),
        "a bind of a share whose virtiofsd ended is not refused by name: {}",
        out.stderr
    );
    let out = ok(b, &["run", "--rm", "busybox", "echo", "still serving"]);
    assert_eq!(out.stdout_text(), "still serving\n");
}
