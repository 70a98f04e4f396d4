//! docker-py 7 and testcontainers-python 4 (from PyPI, in the venv `cargo xtask deps`
//! makes) drive berth unchanged: `tests/clients/clients.py` runs the calls their users make
//! every day (run, exec_run, logs, wait, kill, put/get_archive, commit, a testcontainers
//! container with a log wait strategy and a mapped port).
#![cfg(feature = "vm")]

use std::path::PathBuf;

use berth_tests::docker::Docker;
use berth_tests::Berth;

#[test]
fn docker_py_and_testcontainers_drive_berth() {
    let python =
        PathBuf::from(std::env::var_os("BERTH_TEST_PYTHON").expect(
            "BERTH_TEST_PYTHON: the python of the clients' venv (cargo xtask test sets it)",
        ));
    assert!(
        python.is_file(),
        "{}: missing; `cargo xtask deps` installs docker-py and testcontainers there",
        python.display()
    );
    let b = Berth::new();
    let d = Docker::new(&b);
    let assets = std::env::var("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    d.ok(&["load", "-i", &format!("{assets}/images/busybox.tar")]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/clients.py");
    let (code, out, err) = d.program(&python, &[&script.display().to_string()]);
    assert_eq!(
        code, 0,
        "the docker-py / testcontainers script failed:\n{out}\n{err}"
    );
    assert!(out.contains("clients ok"), "{out}");
    assert_eq!(
        d.ok(&["ps", "-aq"]),
        "",
        "the clients left containers behind"
    );
    drop(d);
    b.assert_nothing_left();
}
