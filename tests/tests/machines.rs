//! Machine selection: every command acts on the machine the user named (`--machine`,
//! `$BERTH_MACHINE`, or a verb's NAME), never on another; only `default` is created on
//! first use; resource requests are checked up front.
#![cfg(feature = "vm")]

use berth_tests::{ok, with_busybox, Berth, Outcome};

const DEV: &[(&str, &str)] = &[("BERTH_MACHINE", "dev")];

fn dev(b: &Berth, args: &[&str]) -> Outcome {
    b.run_env(args, DEV, b"")
}

/// `what` must have been refused with exit `code` and a message holding every needle.
fn refused(what: &str, out: &Outcome, code: i32, needles: &[&str]) {
    assert_eq!(
        out.code, code,
        "{what} must be refused with exit {code} saying {needles:?}; stderr: {}",
        out.stderr
    );
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "{what}: expected {n:?} in: {}",
            out.stderr
        );
    }
}

/// The docker CLI's context names, as `docker context ls` lists them from berth's config.
fn docker_contexts(b: &Berth) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["context", "ls", "--format", "{{.Name}}"])
        .env("DOCKER_CONFIG", b.docker_config())
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .output()
        .expect("the docker CLI is installed (see machine-facts.md)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(" *").to_string())
        .collect()
}

#[test]
fn machine_verbs_act_on_the_selected_machine_and_keep_the_others_volumes() {
    let b = with_busybox();
    let start = ok(&b, &["machine", "start"]);
    assert!(
        start.stderr.contains("creating machine default"),
        "{}",
        start.stderr
    );
    ok(&b, &["volume", "create", "keep"]);

    // Requests no container of this machine (2 CPUs) can have are refused before anything
    // is created, with the limit named.
    let tiny = b.run(&["run", "--rm", "--memory", "1", "busybox", "true"], b"");
    refused(
        "--memory 1 (below Docker's 6 MiB floor)",
        &tiny,
        125,
        &["Minimum memory limit allowed is 6MB"],
    );
    let cpus = b.run(&["run", "--rm", "--cpus", "3", "busybox", "true"], b"");
    refused(
        "--cpus 3 on a 2-CPU machine",
        &cpus,
        125,
        &["only 2 CPUs available"],
    );
    let set = b.run(&["create", "--cpuset-cpus", "5", "busybox", "true"], b"");
    refused(
        "--cpuset-cpus 5 on a 2-CPU machine",
        &set,
        125,
        &["requested 5, available: 0-1"],
    );
    assert_eq!(
        ok(&b, &["ps", "-aq"]).stdout_text(),
        "",
        "nothing was created"
    );

    // A second machine, selected by the environment alone.
    let made = dev(
        &b,
        &[
            "machine", "start", "--memory", "384M", "--cpus", "1", "--disk", "2G",
        ],
    );
    assert_eq!(
        made.code, 0,
        "BERTH_MACHINE=dev machine start must make machine dev: {}",
        made.stderr
    );
    assert!(
        made.stderr.contains("creating machine dev"),
        "{}",
        made.stderr
    );
    assert_eq!(b.running_machines().len(), 2);
    // machine ls lists both, each with its own size and state.
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&b, &["machine", "ls", "--format", "json"]).stdout_text())
            .expect("machine ls --format json");
    let summary: Vec<(String, bool, u64, u64)> = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_string(),
                m["running"].as_bool().unwrap_or_default(),
                m["config"]["cpus"].as_u64().unwrap_or_default(),
                m["config"]["memory_mib"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("default".to_string(), true, 2, 1024),
            ("dev".to_string(), true, 1, 384)
        ],
        "machine ls lists both running machines with their sizes: {listed}"
    );
    let table = ok(&b, &["machine", "ls"]).stdout_text();
    assert!(
        table.starts_with("NAME")
            && table
                .lines()
                .any(|l| l.starts_with("dev ") && l.contains("running")),
        "machine ls: {table}"
    );
    let contexts = docker_contexts(&b);
    assert!(contexts.contains(&"berth".to_string()), "{contexts:?}");
    assert!(contexts.contains(&"berth-dev".to_string()), "{contexts:?}");
    let info = dev(&b, &["run", "--rm", "busybox", "nproc"]);
    assert_eq!(info.code, 0, "{}", info.stderr);
    assert_eq!(info.stdout_text(), "1\n", "the container ran on dev");
    // --disk: the machine's disk is that size (sparse on the host), and a volume on it
    // sees a filesystem of about that size.
    let disk = b.home().join("machines/dev/disk.img");
    assert_eq!(
        std::fs::metadata(&disk).unwrap().len(),
        2 << 30,
        "--disk 2G"
    );
    let df = dev(
        &b,
        &["run", "--rm", "-v", "dvol:/v", "busybox", "df", "-k", "/v"],
    );
    let total: u64 = df
        .stdout_text()
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("df: {}", df.stdout_text()));
    assert!(
        (1_700_000..=2_097_152).contains(&total),
        "a volume on a --disk 2G machine: {total} KiB"
    );
    // Both machines run containers at once, each listing only its own.
    ok(
        &b,
        &[
            "run",
            "-d",
            "--name",
            "on-default",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let on_dev = dev(
        &b,
        &["run", "-d", "--name", "on-dev", "busybox", "sleep", "1000"],
    );
    assert_eq!(on_dev.code, 0, "{}", on_dev.stderr);
    let names = |out: Outcome| out.stdout_text();
    assert_eq!(
        names(ok(&b, &["ps", "--format", "{{.Names}}"])),
        "on-default\n"
    );
    assert_eq!(
        names(dev(&b, &["ps", "--format", "{{.Names}}"])),
        "on-dev\n"
    );
    ok(&b, &["rm", "-f", "on-default"]);

    // `machine rm` with no NAME removes the selected machine, and only after -f while it runs.
    let running = dev(&b, &["machine", "rm"]);
    refused(
        "machine rm of a running machine without -f",
        &running,
        125,
        &["machine dev is running", "--force"],
    );
    assert_eq!(b.machines(), ["default", "dev"]);
    let gone = dev(&b, &["machine", "rm", "-f"]);
    assert_eq!(
        gone.code, 0,
        "BERTH_MACHINE=dev machine rm -f must remove dev: {}",
        gone.stderr
    );
    assert_eq!(gone.stdout_text(), "dev\n");
    assert_eq!(b.machines(), ["default"]);
    assert_eq!(b.running_machines(), ["default"]);
    let contexts = docker_contexts(&b);
    assert!(
        contexts.contains(&"berth".to_string()) && !contexts.contains(&"berth-dev".to_string()),
        "machine rm removes only its own docker CLI context: {contexts:?}"
    );
    let volumes = ok(&b, &["volume", "ls", "-q"]).stdout_text();
    assert_eq!(volumes, "keep\n", "default keeps its volume");
    let after = dev(&b, &["ps"]);
    refused(
        "ps on the removed machine dev",
        &after,
        125,
        &["no machine named dev"],
    );

    // A disk with volumes is not deleted without -f when no one can be asked.
    ok(&b, &["machine", "stop", "-t", "0"]);
    let keep = b.run(&["machine", "rm"], b"");
    refused(
        "machine rm of a disk with volumes, without -f or a terminal",
        &keep,
        125,
        &["holds 1 volume (keep)", "--force"],
    );
    assert_eq!(b.machines(), ["default"]);
    let again = ok(&b, &["machine", "start"]);
    assert!(
        again.stderr.contains("starting machine default"),
        "{}",
        again.stderr
    );
    assert_eq!(ok(&b, &["volume", "ls", "-q"]).stdout_text(), "keep\n");
    // The stop left the machine's disk clean (read-only before the power-off): its
    // mount at this boot had no journal to replay.
    // Privileged: Debian's kernels restrict the kernel log to CAP_SYSLOG.
    let boot = ok(&b, &["run", "--rm", "--privileged", "busybox", "dmesg"]).stdout_text();
    let ext4: Vec<&str> = boot
        .lines()
        .filter(|l| l.contains("EXT4-fs (vda)"))
        .collect();
    assert!(
        !ext4.is_empty() && !ext4.iter().any(|l| l.contains("recovery")),
        "machine stop leaves the disk clean: the next boot's mount says {ext4:?}"
    );
    b.assert_nothing_left();
}

#[test]
fn a_machine_that_does_not_exist_is_an_error_and_never_created() {
    let b = with_busybox();
    let typo = b.run(&["--machine", "nosuch", "ps"], b"");
    refused(
        "--machine nosuch ps",
        &typo,
        125,
        &["no machine named nosuch; create it with `berth machine start nosuch`"],
    );
    let env = b.run_env(
        &["run", "--rm", "busybox", "true"],
        &[("BERTH_MACHINE", "nosuch")],
        b"",
    );
    refused(
        "BERTH_MACHINE=nosuch run",
        &env,
        125,
        &["no machine named nosuch"],
    );
    for verb in [
        &["machine", "stop"][..],
        &["machine", "rm", "-f"],
        &["machine", "socket"],
    ] {
        let out = b.run_env(verb, &[("BERTH_MACHINE", "nosuch")], b"");
        refused(
            &format!("BERTH_MACHINE=nosuch {verb:?}"),
            &out,
            125,
            &["no machine named nosuch"],
        );
    }
    let both = b.run(&["--machine", "dev", "machine", "rm", "default"], b"");
    refused(
        "--machine dev machine rm default",
        &both,
        125,
        &["--machine dev and the machine name default disagree"],
    );
    assert!(b.machines().is_empty(), "{:?}", b.machines());
    assert!(!b.home().join("machines/nosuch").exists());
    assert_eq!(
        ok(&b, &["machine", "ls", "--format", "json"])
            .stdout_text()
            .trim(),
        "[]"
    );

    // `vm run` has no machine: $BERTH_MACHINE does not concern it, and QEMU's machine type
    // has a flag of its own.
    let vm = b.run_env(
        &[
            "vm",
            "run",
            "--kernel",
            &berth_tests::test_kernel(),
            "--",
            "true",
        ],
        DEV,
        b"",
    );
    assert_eq!(vm.code, 0, "{}", vm.stderr);
    let bad = b.run(&["vm", "run", "--machine-type", "q35", "--", "true"], b"");
    refused(
        "vm run --machine-type q35",
        &bad,
        125,
        &["--machine-type \"q35\": expected microvm or pc"],
    );
    assert!(b.machines().is_empty());
}
