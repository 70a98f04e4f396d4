//! `--userns=private`: the container's root is mapped to an unprivileged range of host ids.
//!
//! The container's first process unshares a user namespace once its root filesystem is
//! built (the mounts are made by real root, in a mount namespace the user namespace does
//! not own, so the container cannot change them). A process cannot map arbitrary ids for
//! itself, so its parent, the shim (real root), writes the maps; two pipes order the steps.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

/// First host id of the range container ids 0..RANGE map to.
pub const HOST_BASE: u32 = 100_000;
/// Ids mapped.
pub const RANGE: u32 = 65_536;

/// The map lines written to `uid_map` and `gid_map`.
pub fn map_line() -> String {
    format!("0 {HOST_BASE} {RANGE}\n")
}

/// The child's ends: it says "unshared" on one pipe and waits for "mapped" on the other.
pub struct ChildSide {
    unshared: File,
    mapped: File,
}

/// The shim's ends.
pub struct ParentSide {
    unshared: File,
    mapped: File,
}

/// Two pipes, before the fork.
pub fn channel() -> io::Result<(ParentSide, ChildSide)> {
    let (unshared_r, unshared_w) = crate::sys::pipe()?;
    let (mapped_r, mapped_w) = crate::sys::pipe()?;
    let file = |fd: OwnedFd| File::from(fd);
    Ok((
        ParentSide {
            unshared: file(unshared_r),
            mapped: file(mapped_w),
        },
        ChildSide {
            unshared: file(unshared_w),
            mapped: file(mapped_r),
        },
    ))
}

impl ChildSide {
    /// Enters a new user namespace and waits until the parent has mapped it; then
    /// becomes its root.
    pub fn enter(mut self) -> io::Result<()> {
        crate::sys::unshare_user_namespace()?;
        self.unshared.write_all(b"u")?;
        let mut byte = [0u8; 1];
        self.mapped.read_exact(&mut byte)?;
        if byte != *b"m" {
            return Err(io::Error::other(
                "the shim could not map the user namespace",
            ));
        }
        crate::sys::set_identity(0, 0)
    }
}

impl ParentSide {
    /// Waits for the child to unshare, writes its maps, and lets it go on. On any
    /// failure the child is told so (and gives up) rather than left waiting.
    pub fn map(mut self, child: u32) -> io::Result<()> {
        let mut byte = [0u8; 1];
        let result = self.unshared.read_exact(&mut byte).and_then(|_| {
            std::fs::write(format!("/proc/{child}/uid_map"), map_line())?;
            std::fs::write(format!("/proc/{child}/gid_map"), map_line())
        });
        let _ = self
            .mapped
            .write_all(if result.is_ok() { b"m" } else { b"x" });
        result
    }
}
