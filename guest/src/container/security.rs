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

/// The container's capabilities: Docker's defaults (all with `--privileged`), with
/// `--cap-add` and then `--cap-drop` applied (`ALL` allowed in both, as Docker).
pub fn capability_set(s: &berth_protocol::Security) -> Result<CapsHashSet, String> {
    let mut set: CapsHashSet = if s.privileged {
        caps::all()
    } else {
        DEFAULT_CAPS.iter().copied().collect()
    };
    for name in &s.cap_add {
        match parse(name)? {
            None => set = caps::all(),
            Some(cap) => {
                set.insert(cap);
            }
        }
    }
    for name in &s.cap_drop {
        match parse(name)? {
            None => set.clear(),
            Some(cap) => {
                set.remove(&cap);
            }
        }
    }
    Ok(set)
}

/// A capability name as Docker takes it (`net_admin`, `CAP_NET_ADMIN`); `None` for `ALL`.
fn parse(name: &str) -> Result<Option<Capability>, String> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(None);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse::<Capability>()
        .map(Some)
        .map_err(|_| format!("unknown capability {name:?}"))
}

/// Limits the bounding set to `keep` (must run before dropping root).
pub fn limit_bounding_set(keep: &CapsHashSet) -> Result<(), String> {
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
pub fn apply_process_caps(uid: u32, caps_of_root: &CapsHashSet) -> Result<(), String> {
    let set: CapsHashSet = if uid == 0 {
        caps_of_root.clone()
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
    fn cap_add_and_drop_follow_docker() {
        use berth_protocol::Security;
        let mask = |s: &CapsHashSet| s.iter().fold(0u64, |m, c| m | c.bitmask());
        let sec = |add: &[&str], drop: &[&str]| Security {
            cap_add: add.iter().map(|s| s.to_string()).collect(),
            cap_drop: drop.iter().map(|s| s.to_string()).collect(),
            ..Security::default()
        };
        let base = mask(&capability_set(&Security::default()).unwrap());
        assert_eq!(base, 0xa80425fb);
        let added = capability_set(&sec(&["net_admin"], &[])).unwrap();
        assert_eq!(mask(&added), base | Capability::CAP_NET_ADMIN.bitmask());
        let dropped = capability_set(&sec(&[], &["CAP_CHOWN"])).unwrap();
        assert_eq!(mask(&dropped), base & !Capability::CAP_CHOWN.bitmask());
        assert!(capability_set(&sec(&[], &["ALL"])).unwrap().is_empty());
        assert_eq!(capability_set(&sec(&["ALL"], &[])).unwrap(), caps::all());
        assert!(capability_set(&sec(&["FLY"], &[])).is_err());
    }

    #[test]
    fn default_set_is_dockers_mask() {
        let mask = DEFAULT_CAPS.iter().fold(0u64, |m, c| m | c.bitmask());
        assert_eq!(mask, 0xa80425fb);
    }
}
