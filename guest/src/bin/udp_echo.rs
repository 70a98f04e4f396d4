//! `berth-udp-echo [PORT]`: sends every UDP datagram back to where it came from. Put into
//! the test images by `cargo xtask images` (Debian's busybox has no UDP server applet), so
//! tests can check UDP through published ports.

fn main() {
    let port = std::env::args().nth(1).unwrap_or_else(|| "7".into());
    let socket = match std::net::UdpSocket::bind(format!("0.0.0.0:{port}")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth-udp-echo: binding udp port {port}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("berth-udp-echo: listening on udp port {port}");
    let mut buf = vec![0u8; 65535];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let _ = socket.send_to(&buf[..n], from);
            }
            Err(e) => eprintln!("berth-udp-echo: {e}"),
        }
    }
}
