//! `berth vm run --uplink open|restricted|none` and `-p`: what the guest can reach, checked
//! only against a service this test runs on the host's 127.0.0.1 (nothing leaves the
//! machine), and a guest port published on the host.
#![cfg(feature = "vm")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use berth_tests::{test_kernel, wait_until, Berth};

/// A host service on 127.0.0.1 that greets every connection; its port.
fn greeter() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"hello-from-host\n");
        }
    });
    port
}

#[test]
fn the_uplink_decides_what_the_guest_reaches() {
    let b = Berth::new();
    let port = greeter();
    // QEMU's user network shows the host's loopback as 10.0.2.2.
    let fetch = format!("nc -w 5 10.0.2.2 {port} </dev/null; echo rc=$?; ls /sys/class/net");

    let open = b.vm_run(&["--uplink", "open"], &["sh", "-c", &fetch]);
    assert_eq!(open.code, 0, "{}", open.stderr);
    assert!(
        open.stdout_text().starts_with("hello-from-host\n"),
        "--uplink open reaches a host service: {}",
        open.stdout_text()
    );

    let restricted = b.vm_run(&["--uplink", "restricted"], &["sh", "-c", &fetch]);
    let text = restricted.stdout_text();
    assert!(
        !text.contains("hello-from-host") && text.contains("eth0"),
        "--uplink restricted: an interface, but the host service is out of reach: {text}"
    );

    let none = b.vm_run(
        &["--uplink", "none"],
        &["sh", "-c", "ls /sys/class/net; cat /proc/net/route"],
    );
    assert_eq!(none.code, 0, "{}", none.stderr);
    let text = none.stdout_text();
    assert!(
        !text.contains("eth0") && text.lines().filter(|l| l.contains("00000000")).count() == 0,
        "--uplink none: no interface and no route: {text}"
    );
}

#[test]
fn vm_run_publishes_a_guest_port_on_the_host() {
    let b = Berth::new();
    // A free host port: bind, note it, let it go for QEMU to take.
    let host_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let publish = format!("{host_port}:8080");
    let kernel = test_kernel();
    let serve = "while true; do echo served-by-guest | nc -l -p 8080; done";
    let vm = b.spawn(&[
        "vm", "run", "--kernel", &kernel, "-p", &publish, "--", "sh", "-c", serve,
    ]);
    let mut got = String::new();
    wait_until(
        "the published guest port answering",
        Duration::from_secs(60),
        || {
            got.clear();
            match TcpStream::connect(("127.0.0.1", host_port)) {
                Ok(mut s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = s.read_to_string(&mut got);
                    got.contains("served-by-guest")
                }
                Err(_) => false,
            }
        },
    );
    drop(vm);
    // The VM went with the command that ran it.
    b.assert_nothing_left();
}
