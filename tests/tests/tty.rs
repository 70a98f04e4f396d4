//! `-it` under a real pseudo-terminal (tmux): a prompt, the terminal's size, Ctrl-D ends it.
#![cfg(feature = "vm")]

use std::process::Command;
use std::time::Duration;

use berth_tests::{berth_bin, test_kernel, Berth};

/// A tmux server of its own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(width: u16, height: u16, command: &str) -> Tmux {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = format!("berth-test-{}-{n}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                command,
            ])
            .status()
            .expect("tmux is installed by `cargo xtask deps`");
        assert!(status.success());
        Tmux { socket }
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["-L", self.socket.as_str(), "send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        assert!(Command::new("tmux").args(&args).status().unwrap().success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (with a deadline) until the screen shows `text`.
    fn wait_for(&self, text: &str) -> String {
        berth_tests::wait_for(
            &format!("{text:?} on the terminal's screen"),
            Duration::from_secs(90),
            || {
                let screen = self.screen();
                match screen.contains(text) {
                    true => Ok(screen),
                    false => Err(format!("the screen:\n{screen}")),
                }
            },
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn session(b: &Berth, width: u16, height: u16, berth_args: &str) -> Tmux {
    let assets = std::env::var("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    let command = format!(
        "env BERTH_HOME={} BERTH_ASSETS={assets} BERTH_KERNEL={} BERTH_UPLINK=restricted {} {berth_args}; echo EXIT=$?; sleep 120",
        b.home().display(),
        test_kernel(),
        berth_bin().display()
    );
    Tmux::start(width, height, &command)
}

#[test]
fn vm_run_it_gives_a_terminal_of_the_right_size() {
    let b = Berth::new();
    let t = session(
        &b,
        91,
        23,
        &format!("vm run --kernel {} -it -- sh", test_kernel()),
    );
    t.wait_for("/ #");
    t.send(&["stty size; tty", "Enter"]);
    t.wait_for("23 91");
    t.wait_for("/dev/pts/");
    t.send(&["exit 4", "Enter"]);
    t.wait_for("EXIT=4");
}

#[test]
fn run_it_gives_a_prompt_and_ctrl_d_ends_it() {
    let b = Berth::new();
    let image =
        std::path::Path::new(&std::env::var("BERTH_ASSETS").unwrap()).join("images/busybox.tar");
    assert_eq!(b.run(&["load", "-i", image.to_str().unwrap()], b"").code, 0);
    let t = session(&b, 100, 30, "run -it --rm -u nobody busybox sh");
    t.wait_for("/ $");
    t.send(&["stty size", "Enter"]);
    t.wait_for("30 100");
    // The terminal is the container's own /dev/pts/0, and its user's.
    // The marker is computed, so the echoed command line never matches it.
    t.send(&["tty && echo hi > /dev/tty && echo TTY-$((40+2))", "Enter"]);
    let screen = t.wait_for("TTY-42");
    assert!(
        screen.contains("/dev/pts/0"),
        "the container's terminal should be /dev/pts/0: {screen}"
    );
    t.send(&["C-d"]);
    t.wait_for("EXIT=0");
}

#[test]
fn exec_it_gets_a_terminal_of_the_right_size() {
    let b = Berth::new();
    let image =
        std::path::Path::new(&std::env::var("BERTH_ASSETS").unwrap()).join("images/busybox.tar");
    assert_eq!(b.run(&["load", "-i", image.to_str().unwrap()], b"").code, 0);
    let out = b.run(
        &["run", "-d", "--name", "box", "busybox", "sleep", "1000"],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let t = session(&b, 87, 27, "exec -it box sh");
    t.wait_for("/ #");
    t.send(&["stty size", "Enter"]);
    t.wait_for("27 87");
    t.send(&["exit 6", "Enter"]);
    t.wait_for("EXIT=6");
    drop(t);
    // Docker's detach keys end the session and leave the process running.
    let t = session(&b, 87, 27, "exec -it box sh -c 'echo ready; exec cat'");
    t.wait_for("ready");
    t.send(&["C-p", "C-q"]);
    let screen = t.wait_for("EXIT=0");
    assert!(!screen.contains("EXIT=1"), "{screen}");
    let ps = b.run(&["exec", "box", "ps"], b"");
    assert!(
        ps.stdout_text().contains("cat"),
        "the detached exec's process should still run: {}",
        ps.stdout_text()
    );
}
