//! `berth bench --quick`: the container-vs-VM report on this machine, with its table,
//! its JSON and an SVG chart per measure; every measure present (a failing one would be a
//! note naming it).
#![cfg(feature = "vm")]

use berth_tests::Berth;

#[test]
fn berth_bench_reports_startup_memory_density_cpu_and_io() {
    let b = Berth::new();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().display().to_string();
    let kernel = berth_tests::test_kernel();
    let run = b.run(
        &["bench", "--quick", "--kernel", &kernel, "--out", &out],
        b"",
    );
    let table = run.stdout_text();
    assert_eq!(run.code, 0, "berth bench: {table}{}", run.stderr);
    for row in [
        "start-up: cold VM to a command",
        "start-up: container on a running machine",
        "start-up: crun run in the same guest",
        "memory: QEMU RSS (idle machine)",
        "memory: per idle container",
        "density: idle containers in the budget",
        "CPU loop: container",
        "tmpfs read: host",
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?}: {table}"));
        assert!(
            !line.trim_end().ends_with(" -"),
            "the report has no figure for {row:?}: {table}"
        );
    }
    assert!(!table.contains("note ("), "a measure failed: {table}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.path().join("report.json")).unwrap())
            .unwrap();
    let r = &json[0];
    assert_eq!(r["kernel"], kernel.as_str());
    let median = |p: &str| r.pointer(p).and_then(|v| v.as_f64()).unwrap_or(0.0);
    assert!(
        median("/startup/cold_vm/median") > 0.0 && median("/startup/warm_container/median") > 0.0,
        "{r}"
    );
    assert!(
        r["startup"]["cold_vm"]["runs"].as_u64() == Some(3),
        "medians of several runs: {r}"
    );
    assert!(median("/memory/qemu_rss") > 10.0, "QEMU's RSS: {r}");
    assert!(
        r["density"]["containers"].as_u64() > r["density"]["vms"].as_u64(),
        "density: {r}"
    );
    for chart in [
        "startup.svg",
        "memory.svg",
        "density.svg",
        "cpu.svg",
        "io.svg",
    ] {
        let svg = std::fs::read_to_string(out_dir.path().join(chart)).unwrap_or_default();
        assert!(
            svg.starts_with("<svg") && svg.contains("<rect"),
            "the chart {chart} has no bars"
        );
    }
    b.assert_nothing_left();
}
