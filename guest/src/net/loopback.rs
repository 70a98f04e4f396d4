//! The loopback interface, brought up with ioctls: at boot this needs no netlink
//! connection (see `Net::start`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Brings `lo` of the current network namespace up, as `ip link set lo up` does, with
/// two ioctls on a datagram socket: at boot this needs no netlink connection.
pub fn loopback_up() -> io::Result<()> {
    let (sock, mut req) = loopback_flags()?;
    // SAFETY: `loopback_flags` filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: a valid ifreq naming an interface; SIOCSIFFLAGS only reads it.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A datagram socket and `lo`'s flags as SIOCGIFFLAGS reads them.
fn loopback_flags() -> io::Result<(OwnedFd, libc::ifreq)> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in req.ifr_name.iter_mut().zip(b"lo") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming an interface, as SIOCGIFFLAGS expects; the
    // kernel writes only the flags member of its union.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((sock, req))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `lo` of the calling thread's network namespace is up.
    fn loopback_is_up() -> io::Result<bool> {
        let (_sock, req) = loopback_flags()?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        Ok(unsafe { req.ifr_ifru.ifru_flags } & libc::IFF_UP as libc::c_short != 0)
    }

    #[test]
    fn loopback_up_brings_up_lo_of_a_new_namespace() {
        let outcome = crate::sys::in_new_netns(|| {
            let before = loopback_is_up()?;
            loopback_up()?;
            Ok((before, loopback_is_up()?))
        })
        .unwrap();
        match outcome {
            None => eprintln!("skipped: creating a network namespace needs root"),
            Some((before, after)) => {
                assert!(!before, "lo of a new network namespace starts down");
                assert!(after, "loopback_up left lo down");
            }
        }
    }
}
