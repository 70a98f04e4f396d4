//! Docker's default privileges: its capability set, no_new_privs.

use caps::{CapSet, Capability, CapsHashSet};

/// Docker's default capabilities (CapEff 00000000a80425fb for root).
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Limits the bounding set to Docker's defaults (must run before dropping root).
pub fn limit_bounding_set() -> Result<(), String> {
    let keep: CapsHashSet = DEFAULT_CAPS.iter().copied().collect();
    for cap in caps::all() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| format!("dropping {cap}: {e}"))?;
        }
    }
    Ok(())
}

/// After the identity change: a root process gets exactly Docker's defaults; a non-root
/// one has none left (the kernel cleared them at setuid). Then no_new_privs, so no
/// setuid binary can raise them again.
pub fn apply_process_caps(uid: u32) -> Result<(), String> {
    let set: CapsHashSet = if uid == 0 {
        DEFAULT_CAPS.iter().copied().collect()
    } else {
        CapsHashSet::new()
    };
    // Effective must shrink before permitted. Inheritable stays empty, as in Docker 20.10+.
    for (which, caps) in [
        (CapSet::Effective, &set),
        (CapSet::Permitted, &set),
        (CapSet::Inheritable, &CapsHashSet::new()),
    ] {
        caps::set(None, which, caps).map_err(|e| format!("setting {which:?} capabilities: {e}"))?;
    }
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| format!("clearing ambient capabilities: {e}"))?;
    crate::sys::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_is_dockers_mask() {
        let mask = DEFAULT_CAPS.iter().fold(0u64, |m, c| m | c.bitmask());
        assert_eq!(mask, 0xa80425fb);
    }
}
