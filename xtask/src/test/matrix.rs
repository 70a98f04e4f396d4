//! The kernel × test matrix of `cargo xtask test`: each kernel's JUnit report (nextest's)
//! read into results, a test that printed `berth-skip: REASON` counted as a skip with its
//! reason, a test the kernel's subset left out shown as not run, and the whole written as
//! markdown, JUnit XML and JSON. Shards (one kernel each, on separate CI jobs) write their
//! JSON, and `merge` joins them into one matrix.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

/// What a test printed to say it was skipped, and why.
pub const SKIP_MARKER: &str = "berth-skip: ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// One test on one kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub status: Status,
    pub seconds: f64,
    /// A skip's reason, or the start of a failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One kernel's results (a shard): test name → cell, and what the kernel ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    pub kernel: String,
    /// "all VM tests", or the subset's description.
    pub scope: String,
    pub tests: BTreeMap<String, Cell>,
}

/// Reads nextest's JUnit report: a test case per test, named `binary::test`.
pub fn shard_from_junit(kernel: &str, scope: &str, xml: &str) -> Result<Shard> {
    let report = Report::deserialize_from_str(xml).context("reading the JUnit report")?;
    let mut tests = BTreeMap::new();
    for suite in &report.test_suites {
        for case in &suite.test_cases {
            let binary = suite.name.as_str().rsplit("::").next().unwrap_or("");
            let name = format!("{binary}::{}", case.name.as_str());
            let out = case
                .system_out
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            let skip = out
                .lines()
                .find_map(|l| l.split_once(SKIP_MARKER).map(|(_, r)| r.trim().to_string()));
            let (status, note) = match (&case.status, skip) {
                (TestCaseStatus::Success { .. }, Some(reason)) => (Status::Skip, Some(reason)),
                (TestCaseStatus::Success { .. }, None) => (Status::Pass, None),
                (TestCaseStatus::Skipped { .. }, _) => (Status::Skip, Some("ignored".into())),
                (TestCaseStatus::NonSuccess { message, .. }, _) => (
                    Status::Fail,
                    message
                        .as_ref()
                        .map(|m| m.as_str().chars().take(200).collect()),
                ),
            };
            let seconds = case.time.map(|t| t.as_secs_f64()).unwrap_or(0.0);
            tests.insert(
                name,
                Cell {
                    status,
                    seconds,
                    note,
                },
            );
        }
    }
    Ok(Shard {
        kernel: kernel.to_string(),
        scope: scope.to_string(),
        tests,
    })
}

/// Counts over every cell: (passed, failed, skipped).
pub fn counts(shards: &[Shard]) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for cell in shards.iter().flat_map(|s| s.tests.values()) {
        match cell.status {
            Status::Pass => c.0 += 1,
            Status::Fail => c.1 += 1,
            Status::Skip => c.2 += 1,
        }
    }
    c
}

/// The matrix as a markdown table: a row per test, a column per kernel.
pub fn markdown(shards: &[Shard]) -> String {
    let mut names: Vec<&String> = shards.iter().flat_map(|s| s.tests.keys()).collect();
    names.sort();
    names.dedup();
    let mut s = String::from("# berth VM tests: kernel × test\n\n| test |");
    for shard in shards {
        s.push_str(&format!(" {} |", shard.kernel));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(shards.len()));
    s.push('\n');
    for name in names {
        s.push_str(&format!("| {name} |"));
        for shard in shards {
            let text = match shard.tests.get(name) {
                None => "not run".to_string(),
                Some(c) => match c.status {
                    Status::Pass => format!("pass {:.1}s", c.seconds),
                    Status::Fail => format!("**FAIL** {:.1}s", c.seconds),
                    Status::Skip => format!("skip: {}", c.note.as_deref().unwrap_or("")),
                },
            };
            s.push_str(&format!(" {} |", text.replace('|', "/")));
        }
        s.push('\n');
    }
    s.push_str("\nScope per kernel:\n");
    for shard in shards {
        s.push_str(&format!("- {}: {}\n", shard.kernel, shard.scope));
    }
    let (p, f, k) = counts(shards);
    s.push_str(&format!("\n{p} passed, {f} failed, {k} skipped\n"));
    s
}

/// The matrix as one JUnit report: a suite per kernel.
pub fn junit(shards: &[Shard]) -> Result<String> {
    let mut report = Report::new("berth VM tests");
    for shard in shards {
        let mut suite = TestSuite::new(format!("kernel {}", shard.kernel));
        for (name, cell) in &shard.tests {
            let status = match cell.status {
                Status::Pass => TestCaseStatus::success(),
                Status::Skip => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(cell.note.clone().unwrap_or_default());
                    s
                }
                Status::Fail => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(cell.note.clone().unwrap_or_default());
                    s
                }
            };
            let mut case = TestCase::new(name.clone(), status);
            case.set_classname(format!("kernel.{}", shard.kernel));
            case.set_time(Duration::from_secs_f64(cell.seconds));
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().context("writing the JUnit report")
}

/// Writes `matrix.md`, `matrix.xml` and `matrix.json` into `dir`; returns the counts line.
pub fn write_all(dir: &std::path::Path, shards: &[Shard]) -> Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let md = markdown(shards);
    std::fs::write(dir.join("matrix.md"), &md)?;
    std::fs::write(dir.join("matrix.xml"), junit(shards)?)?;
    std::fs::write(
        dir.join("matrix.json"),
        serde_json::to_string_pretty(shards)?,
    )?;
    let (p, f, k) = counts(shards);
    Ok(format!("{p} passed, {f} failed, {k} skipped"))
}

/// Every shard JSON (`shard-*.json`, one kernel each, or a `matrix.json`) under `dir`,
/// joined in kernel order.
pub fn merge(dir: &std::path::Path) -> Result<Vec<Shard>> {
    let mut shards: Vec<Shard> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                stack.push(path);
            } else if name.starts_with("shard-") && name.ends_with(".json") {
                let text = std::fs::read_to_string(&path)?;
                let shard: Shard = serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?;
                shards.retain(|s| s.kernel != shard.kernel);
                shards.push(shard);
            }
        }
    }
    shards.sort_by(|a, b| a.kernel.cmp(&b.kernel));
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEXTEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="3" failures="1" errors="0" uuid="45c50c4e-0b5f-4a45-8ba1-3d4cd8bbd6f2" timestamp="2026-12-03T12:00:00.000+00:00" time="12.5">
    <testsuite name="berth-tests::vm_run" tests="3" disabled="0" errors="0" failures="1">
        <testcase name="boots" classname="berth-tests::vm_run" timestamp="2026-12-03T12:00:00.000+00:00" time="3.25">
            <system-out>ok
</system-out>
        </testcase>
        <testcase name="shares_folders" classname="berth-tests::vm_run" timestamp="2026-12-03T12:00:00.000+00:00" time="0.5">
            <system-out>berth-skip: no 9p on this kernel
</system-out>
        </testcase>
        <testcase name="breaks" classname="berth-tests::vm_run" timestamp="2026-12-03T12:00:00.000+00:00" time="8.75">
            <failure message="thread panicked at tests/vm_run.rs:9: boom" type="test failure"/>
        </testcase>
    </testsuite>
</testsuites>
"#;

    #[test]
    fn junit_cases_become_cells_and_skip_markers_skips() {
        let shard = shard_from_junit("cloud", "all VM tests", NEXTEST).unwrap();
        let cell = |n: &str| shard.tests.get(n).unwrap().clone();
        assert_eq!(cell("vm_run::boots").status, Status::Pass);
        assert_eq!(cell("vm_run::boots").seconds, 3.25);
        let skip = cell("vm_run::shares_folders");
        assert_eq!(
            (skip.status, skip.note.as_deref()),
            (Status::Skip, Some("no 9p on this kernel"))
        );
        let fail = cell("vm_run::breaks");
        assert_eq!(fail.status, Status::Fail);
        assert!(fail.note.unwrap().contains("boom"));
    }

    #[test]
    fn the_matrix_has_a_column_per_kernel_and_ends_with_the_counts() {
        let a = shard_from_junit("6.1", "all VM tests", NEXTEST).unwrap();
        let mut b = shard_from_junit("rt-6.12", "vm_run and kernels only", NEXTEST).unwrap();
        b.tests.remove("vm_run::breaks");
        let md = markdown(&[a.clone(), b.clone()]);
        assert!(md.contains("| test | 6.1 | rt-6.12 |"), "{md}");
        assert!(
            md.contains("| vm_run::breaks | **FAIL** 8.8s | not run |"),
            "{md}"
        );
        assert!(md.contains("skip: no 9p on this kernel"), "{md}");
        assert!(md.contains("- rt-6.12: vm_run and kernels only"), "{md}");
        assert!(md.ends_with("2 passed, 1 failed, 2 skipped\n"), "{md}");
        let xml = junit(&[a, b]).unwrap();
        assert!(
            xml.contains(r#"name="kernel 6.1""#) && xml.contains("<skipped"),
            "{xml}"
        );
    }

    #[test]
    fn shards_merge_into_one_matrix() {
        let dir = tempfile::tempdir().unwrap();
        for kernel in ["cloud", "6.1"] {
            let sub = dir.path().join(format!("job-{kernel}"));
            std::fs::create_dir(&sub).unwrap();
            let shard = shard_from_junit(kernel, "all VM tests", NEXTEST).unwrap();
            std::fs::write(
                sub.join(format!("shard-{kernel}.json")),
                serde_json::to_string(&shard).unwrap(),
            )
            .unwrap();
        }
        let merged = merge(dir.path()).unwrap();
        let kernels: Vec<_> = merged.iter().map(|s| s.kernel.as_str()).collect();
        assert_eq!(kernels, ["6.1", "cloud"]);
        let line = write_all(&dir.path().join("out"), &merged).unwrap();
        assert_eq!(line, "2 passed, 2 failed, 2 skipped");
        assert!(dir.path().join("out/matrix.md").is_file());
    }
}
