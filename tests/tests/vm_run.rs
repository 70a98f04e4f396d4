//! `berth vm run` against a real kernel under QEMU (the kernel `BERTH_TEST_KERNEL` names).
#![cfg(feature = "vm")]

use berth_tests::{kernel_release, test_kernel, Berth};
use sha2::{Digest, Sha256};

/// Transports that must work on every host berth's tests run on.
const TRANSPORTS: &[&str] = &["vhost-user", "serial"];

#[test]
fn stdout_stderr_and_exit_code_on_every_transport() {
    for transport in TRANSPORTS {
        let b = Berth::new();
        let out = b.vm_run(
            &["--transport", transport],
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
        );
        assert_eq!(out.code, 3, "{transport}: {}", out.stderr);
        assert_eq!(out.stdout_text(), "out\n", "{transport}");
        assert_eq!(out.stderr, "err\n", "{transport}");
        b.assert_nothing_left();
    }
}

#[test]
fn stdin_is_forwarded_byte_for_byte_on_every_transport() {
    let mut data = vec![0u8; 10_000_000];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let expected = format!("{:x}  -\n", Sha256::digest(&data));
    for transport in TRANSPORTS {
        let b = Berth::new();
        let out = b.vm_run_stdin(&["-i", "--transport", transport], &["sha256sum"], &data);
        assert_eq!(out.code, 0, "{transport}: {}", out.stderr);
        assert_eq!(out.stdout_text(), expected, "{transport}");
    }
}

#[test]
fn large_output_arrives_whole_and_separate() {
    let b = Berth::new();
    let out = b.vm_run(
        &[],
        &["sh", "-c", "head -c 3000000 /dev/zero; echo done >&2"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.len(), 3_000_000);
    assert!(out.stdout.iter().all(|b| *b == 0));
    assert_eq!(out.stderr, "done\n");
}

#[test]
fn death_by_signal_exits_128_plus_n() {
    let b = Berth::new();
    let out = b.vm_run(
        &[],
        &[
            "sh",
            "-c",
            "grep -E 'SigBlk|SigIgn' /proc/self/status; kill -9 $$",
        ],
    );
    assert_eq!(out.code, 137, "{}", out.stderr);
    // The command starts with no signal blocked or ignored.
    assert_eq!(
        out.stdout_text(),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
    let out = b.vm_run(&[], &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.code, 143, "{}", out.stderr);
    b.assert_nothing_left();
}

#[test]
fn docker_exit_codes_for_commands_that_cannot_run() {
    let b = Berth::new();
    let out = b.vm_run(&[], &["no-such-command"]);
    assert_eq!(out.code, 127, "{}", out.stderr);
    assert!(out.stderr.contains("no-such-command"), "{}", out.stderr);
    let out = b.vm_run(&[], &["/etc"]);
    assert_eq!(out.code, 126, "{}", out.stderr);
}

#[test]
fn uname_proves_which_kernel_booted() {
    let b = Berth::new();
    let release = kernel_release(&b, &test_kernel());
    let out = b.vm_run(&[], &["uname", "-r"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout_text().trim(), release);
}

#[test]
fn cpus_memory_and_the_pc_machine() {
    let b = Berth::new();
    let out = b.vm_run(
        &["--cpus", "2", "--memory", "256M"],
        &[
            "sh",
            "-c",
            "nproc; grep MemTotal /proc/meminfo; cat /proc/cmdline; dmesg | grep 'Calibrating delay'",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = out.stdout_text();
    assert_eq!(text.lines().next(), Some("2"), "{text}");
    let kib: u64 = text
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .expect("MemTotal");
    assert!(
        kib > 150_000 && kib <= 262_144,
        "MemTotal {kib} kB for 256M"
    );
    // Under TCG (the host gives the TSC's frequency) the second CPU does not measure its
    // delay loop at boot: the kernel is given the figure (`lpj`), which it says it took.
    if text.contains("tsc_early_khz=") {
        assert!(
            text.contains("Calibrating delay loop (skipped) preset value"),
            "the guest measured its delay loop (no lpj on its command line): {text}"
        );
    }
    // The machine type shows in the guest's hardware: a pc's devices sit on a PCI bus
    // (its host bridge among them), a microvm has none.
    let pci = "ls /sys/bus/pci/devices 2>/dev/null | wc -l";
    let out = b.vm_run(&["--machine-type", "pc"], &["sh", "-c", pci]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let on_pc: u32 = out.stdout_text().trim().parse().unwrap_or(0);
    assert!(
        on_pc > 0,
        "--machine-type pc: no PCI devices: {}",
        out.stdout_text()
    );
    let out = b.vm_run(&["--machine-type", "microvm"], &["sh", "-c", pci]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout_text().trim(),
        "0",
        "--machine-type microvm has no PCI bus"
    );
}

#[test]
fn a_file_that_is_not_a_kernel_fails_fast_and_clearly() {
    let b = Berth::new();
    let bogus = b.home().join("not-a-kernel");
    std::fs::write(&bogus, vec![0x42u8; 4096]).unwrap();
    let out = b.run(
        &[
            "vm",
            "run",
            "--kernel",
            bogus.to_str().unwrap(),
            "--",
            "true",
        ],
        b"",
    );
    assert_eq!(out.code, 125, "{}", out.stderr);
    // Fast: berth saw the VM stop (not a boot deadline running out).
    assert!(
        out.stderr.contains("the VM stopped") && out.stderr.contains("before the guest agent"),
        "a file that is not a kernel: berth reports the VM stopping before the agent: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("did not happen within"),
        "a file that is not a kernel: no waiting out the boot deadline: {}",
        out.stderr
    );
    assert!(out.stderr.contains("QEMU said"), "{}", out.stderr);
    b.assert_nothing_left();
}

/// A guest that never answers (its init is a shell waiting on the console) fails at the
/// boot deadline with where QEMU says each vCPU was: at a function named from the kernel's
/// symbols (a tuned kernel's vmlinux), or with why it is not named (Debian's packages
/// carry no System.map that names functions).
#[test]
fn a_guest_that_never_answers_is_reported_with_where_its_vcpus_are() {
    let (dir, manifest) = test_kernel_manifest(&test_kernel());
    let config = std::fs::read_to_string(dir.join("config")).unwrap_or_default();
    let randomized = berth_protocol::kernel::built_in(&config, "CONFIG_RANDOMIZE_BASE");
    let has_names = (manifest.vmlinux.is_some() || manifest.system_map.is_some()) && !randomized;
    let b = Berth::new();
    let out = b.vm_run(
        &[
            "--cpus",
            "2",
            "--boot-timeout",
            "4",
            "--kernel-arg",
            "rdinit=/bin/sh",
        ],
        &["true"],
    );
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("did not happen within 4s"),
        "{}",
        out.stderr
    );
    let report = out
        .stderr
        .split("--- where the guest's vCPUs were (QEMU's state: running) ---")
        .nth(1)
        .unwrap_or_else(|| {
            panic!(
                "a guest that never answered: no report of where its vCPUs were: {}",
                out.stderr
            )
        });
    for cpu in 0..2 {
        let line = report
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("vCPU {cpu}: ")))
            .unwrap_or_else(|| panic!("no line for vCPU {cpu} in the report: {report}"));
        // A slow kernel (a distro's, under TCG) may not have started its second vCPU by
        // the deadline: it is reported as such.
        if cpu > 0 && line.contains(" before 64-bit mode at 0x") {
            continue;
        }
        // Init waits in the kernel: the vCPU is there, at a named function, or the report
        // says why the kernel's functions have no names.
        let named = match has_names {
            true => line.contains("+0x"),
            false => report.contains("(kernel addresses are not named: "),
        };
        assert!(
            line.contains(" in the kernel at ") && named,
            "vCPU {cpu} is not placed at a kernel function: {line}\n{}",
            out.stderr
        );
    }
    b.assert_nothing_left();
}

#[test]
fn too_little_memory_is_refused_up_front() {
    let b = Berth::new();
    let out = b.vm_run(&["--memory", "16M"], &["true"]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("16M is below"), "{}", out.stderr);
    b.assert_nothing_left();
}

#[test]
fn bad_flags_are_refused_with_125() {
    let b = Berth::new();
    for args in [
        &["vm", "run", "--transport", "carrier-pigeon", "--", "true"][..],
        &["vm", "run", "--memory", "lots", "--", "true"],
        &["vm", "run", "--kernel", "no-such-kernel", "--", "true"],
        &["vm", "run", "--no-such-flag", "--", "true"],
    ] {
        let out = b.run(args, b"");
        assert_eq!(out.code, 125, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn the_kernel_vsock_transport_is_used_only_where_it_exists() {
    let b = Berth::new();
    let out = b.vm_run(&["--transport", "vsock"], &["true"]);
    if std::path::Path::new("/dev/vhost-vsock").exists() {
        assert_eq!(out.code, 0, "{}", out.stderr);
    } else {
        assert_eq!(out.code, 125);
        assert!(out.stderr.contains("not available"), "{}", out.stderr);
    }
}

#[test]
fn signals_to_berth_reach_the_command() {
    use std::io::{BufRead, BufReader};
    let b = Berth::new();
    let kernel = test_kernel();
    let script = "trap 'echo got TERM; exit 42' TERM; echo ready; while true; do sleep 0.1; done";
    let mut child = berth_tests::ChildGuard(
        b.command(&["vm", "run", "--kernel", &kernel, "--", "sh", "-c", script])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // If anything below blocks, the watchdog ends berth so the reads return and fail.
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(berth_tests::COMMAND_DEADLINE);
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(lines.next().unwrap().unwrap(), "got TERM");
    assert_eq!(child.wait().unwrap().code(), Some(42));
    b.assert_nothing_left();
}

#[test]
fn fifty_consecutive_boots() {
    let b = Berth::new();
    for i in 0..50 {
        let out = b.vm_run(&[], &["true"]);
        assert_eq!(out.code, 0, "boot {i}: {}", out.stderr);
    }
    b.assert_nothing_left();
}

#[test]
fn a_kernel_given_by_path_boots() {
    let b = Berth::new();
    let kernel = test_kernel();
    let (dir, manifest) = test_kernel_manifest(&kernel);
    if manifest.kind == berth_protocol::kernel::KernelKind::Distro {
        // A distribution's kernel keeps its drivers in modules, which only `berth kernel
        // add` puts in its initramfs: by path it boots without them.
        berth_tests::skip(&format!(
            "{kernel} is a distribution kernel whose drivers are modules: a kernel given \
             by path must have its drivers built in (add this one with `berth kernel add`)"
        ));
        return;
    }
    let image = dir.join("bzImage");
    let image = image.to_str().unwrap();
    let out = b.run(&["vm", "run", "--kernel", image, "--", "uname", "-r"], b"");
    assert_eq!(out.code, 0, "vm run --kernel {image}: {}", out.stderr);
    assert_eq!(
        out.stdout_text().trim(),
        kernel_release(&b, &kernel),
        "the image given by path is the one that booted"
    );
}

#[test]
fn a_tuned_kernel_is_told_its_apic_timer_rate_has_no_pit_and_keeps_time() {
    use berth_protocol::kernel::{built_in, tick_hz, LAPIC_TIMER_PERIOD_OPTION};
    let b = Berth::new();
    let kernel = test_kernel();
    let (dir, manifest) = test_kernel_manifest(&kernel);
    let config = manifest
        .config
        .and_then(|c| std::fs::read_to_string(dir.join(c)).ok())
        .unwrap_or_default();
    if !built_in(&config, LAPIC_TIMER_PERIOD_OPTION) {
        berth_tests::skip(&format!(
            "{kernel} does not have berth's kernel patch ({LAPIC_TIMER_PERIOD_OPTION}): it \
             measures its APIC timer's rate at boot, as distributions' kernels do"
        ));
        return;
    }
    let hz = tick_hz(&config).expect("a tuned kernel's config has CONFIG_HZ");
    // `apic=verbose`: the kernel says whether it measured the rate or was told it.
    let out = b.vm_run(
        &["--kernel-arg", "apic=verbose"],
        &[
            "sh",
            "-c",
            "cat /proc/cmdline; dmesg; cat /proc/uptime; sleep 1; cat /proc/uptime",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = out.stdout_text();
    if !text.lines().next().unwrap_or("").contains("tsc_early_khz=") {
        // Under KVM (or without the host's TSC frequency) the kernel keeps the hardware's
        // own timers: nothing is given, nothing is left out.
        berth_tests::skip(&format!(
            "not a microvm under TCG with the host's TSC frequency: {kernel} measures or \
             reads its timers itself here"
        ));
        return;
    }
    let told = format!("lapic timer already calibrated {}", 1_000_000_000 / hz);
    let apic_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("calibrat") || l.contains("lapic"))
        .collect();
    assert!(
        text.contains(&told),
        "the kernel was not given its APIC timer's rate (lapic_timer_period={} on its command \
         line): no '{told}' in its log; it said: {apic_lines:#?}",
        1_000_000_000 / hz
    );
    // Nor has its microvm a PIT, against which the kernel would measure the CPU's speed.
    // (A PIT that is there but whose quick measurement fails also says this, rarely, under
    // a loaded host: then this check cannot tell.)
    assert!(
        text.contains("tsc: Fast TSC calibration failed"),
        "the microvm has a PIT (no `pit=off`): the kernel measured its CPU against it; it \
         said: {apic_lines:#?}"
    );
    // The rate is right: a one-second sleep, timed by the guest's own clock (the TSC),
    // does not last a multiple of its length, as it would with too large a rate (the
    // APIC timer fires its timers; too small a rate only fires them early, and the kernel
    // re-arms them).
    let uptimes: Vec<f64> = text
        .lines()
        .rev()
        .take(2)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let [after, before] = uptimes[..] else {
        panic!("no two uptimes in the output: {text}");
    };
    let slept = after - before;
    assert!(
        slept < 1.8,
        "`sleep 1` took {slept:.2} s by the guest's clock: its APIC timer's rate is wrong"
    );
}

/// The installed kernel `name`'s directory and its kernel.json.
fn test_kernel_manifest(
    name: &str,
) -> (std::path::PathBuf, berth_protocol::kernel::KernelManifest) {
    let assets = std::env::var("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    let dir = std::path::Path::new(&assets).join(format!("kernels/{name}"));
    let manifest = std::fs::read(dir.join("kernel.json")).expect("the test kernel's kernel.json");
    let manifest = serde_json::from_slice(&manifest).expect("kernel.json");
    (dir, manifest)
}
