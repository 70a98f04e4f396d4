//! The default seccomp filter: the system calls Docker's default profile refuses to a
//! container with the default capabilities (kernel modules, keyrings, mount and
//! namespace changes, clocks, reboot, tracing other processes, ...) fail with EPERM;
//! everything else is allowed. As in Docker's profile, an added capability lifts the
//! refusal of the calls it governs (`SYS_ADMIN`: `mount`, ...). `--security-opt seccomp=unconfined` and `--privileged`
//! install no filter.

use std::collections::BTreeMap;

use caps::{Capability, CapsHashSet};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// The refused system calls (x86_64 numbers), each with the capabilities that lift the
/// refusal, as Docker's default profile grants them: `--cap-add SYS_ADMIN` allows
/// `mount`, `SYS_PTRACE` allows `ptrace`; the keyring, swap, kexec and obsolete calls
/// stay refused whatever the capabilities.
pub const REFUSED: &[(&str, i64, &[Capability])] = &[
    ("acct", libc::SYS_acct, &[Capability::CAP_SYS_PACCT]),
    ("add_key", libc::SYS_add_key, &[]),
    (
        "bpf",
        libc::SYS_bpf,
        &[Capability::CAP_SYS_ADMIN, Capability::CAP_BPF],
    ),
    (
        "clock_adjtime",
        libc::SYS_clock_adjtime,
        &[Capability::CAP_SYS_TIME],
    ),
    (
        "clock_settime",
        libc::SYS_clock_settime,
        &[Capability::CAP_SYS_TIME],
    ),
    (
        "delete_module",
        libc::SYS_delete_module,
        &[Capability::CAP_SYS_MODULE],
    ),
    (
        "finit_module",
        libc::SYS_finit_module,
        &[Capability::CAP_SYS_MODULE],
    ),
    (
        "get_mempolicy",
        libc::SYS_get_mempolicy,
        &[Capability::CAP_SYS_NICE],
    ),
    (
        "init_module",
        libc::SYS_init_module,
        &[Capability::CAP_SYS_MODULE],
    ),
    ("ioperm", libc::SYS_ioperm, &[Capability::CAP_SYS_RAWIO]),
    ("iopl", libc::SYS_iopl, &[Capability::CAP_SYS_RAWIO]),
    ("kcmp", libc::SYS_kcmp, &[Capability::CAP_SYS_PTRACE]),
    ("kexec_file_load", libc::SYS_kexec_file_load, &[]),
    ("kexec_load", libc::SYS_kexec_load, &[]),
    ("keyctl", libc::SYS_keyctl, &[]),
    (
        "lookup_dcookie",
        libc::SYS_lookup_dcookie,
        &[Capability::CAP_SYS_ADMIN],
    ),
    ("mbind", libc::SYS_mbind, &[Capability::CAP_SYS_NICE]),
    ("mount", libc::SYS_mount, &[Capability::CAP_SYS_ADMIN]),
    (
        "move_pages",
        libc::SYS_move_pages,
        &[Capability::CAP_SYS_NICE],
    ),
    (
        "name_to_handle_at",
        libc::SYS_name_to_handle_at,
        &[Capability::CAP_SYS_ADMIN],
    ),
    ("nfsservctl", libc::SYS_nfsservctl, &[]),
    (
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        &[Capability::CAP_DAC_READ_SEARCH],
    ),
    (
        "perf_event_open",
        libc::SYS_perf_event_open,
        &[Capability::CAP_SYS_ADMIN, Capability::CAP_PERFMON],
    ),
    (
        "pivot_root",
        libc::SYS_pivot_root,
        &[Capability::CAP_SYS_ADMIN],
    ),
    (
        "process_vm_readv",
        libc::SYS_process_vm_readv,
        &[Capability::CAP_SYS_PTRACE],
    ),
    (
        "process_vm_writev",
        libc::SYS_process_vm_writev,
        &[Capability::CAP_SYS_PTRACE],
    ),
    ("ptrace", libc::SYS_ptrace, &[Capability::CAP_SYS_PTRACE]),
    ("quotactl", libc::SYS_quotactl, &[Capability::CAP_SYS_ADMIN]),
    ("reboot", libc::SYS_reboot, &[Capability::CAP_SYS_BOOT]),
    ("request_key", libc::SYS_request_key, &[]),
    (
        "set_mempolicy",
        libc::SYS_set_mempolicy,
        &[Capability::CAP_SYS_NICE],
    ),
    ("setns", libc::SYS_setns, &[Capability::CAP_SYS_ADMIN]),
    (
        "settimeofday",
        libc::SYS_settimeofday,
        &[Capability::CAP_SYS_TIME],
    ),
    ("swapoff", libc::SYS_swapoff, &[]),
    ("swapon", libc::SYS_swapon, &[]),
    ("sysfs", libc::SYS_sysfs, &[]),
    ("_sysctl", libc::SYS__sysctl, &[]),
    ("umount2", libc::SYS_umount2, &[Capability::CAP_SYS_ADMIN]),
    ("unshare", libc::SYS_unshare, &[Capability::CAP_SYS_ADMIN]),
    ("uselib", libc::SYS_uselib, &[]),
    ("userfaultfd", libc::SYS_userfaultfd, &[]),
    ("ustat", libc::SYS_ustat, &[]),
];

/// The calls refused to a process holding `granted`.
pub fn refused_for(granted: &CapsHashSet) -> impl Iterator<Item = (&'static str, i64)> + '_ {
    REFUSED
        .iter()
        .filter(|(_, _, lifted_by)| !lifted_by.iter().any(|c| granted.contains(c)))
        .map(|(name, nr, _)| (*name, *nr))
}

/// The compiled default filter for a process holding `granted`.
pub fn default_filter(granted: &CapsHashSet) -> Result<BpfProgram, String> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = refused_for(granted)
        .map(|(_, nr)| (nr, Vec::new()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    BpfProgram::try_from(filter).map_err(|e| format!("seccomp filter: {e}"))
}

/// Installs the default filter for `granted` on this thread (no_new_privs must
/// already be set).
pub fn apply_default(granted: &CapsHashSet) -> Result<(), String> {
    let program = default_filter(granted)?;
    seccompiler::apply_filter(&program).map_err(|e| format!("installing the seccomp filter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_compiles_and_names_are_unique() {
        let defaults: CapsHashSet = crate::container::security::DEFAULT_CAPS
            .iter()
            .copied()
            .collect();
        assert!(!default_filter(&defaults).unwrap().is_empty());
        let mut numbers: Vec<i64> = REFUSED.iter().map(|(_, n, _)| *n).collect();
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), REFUSED.len());
    }

    #[test]
    fn a_capability_lifts_only_its_own_calls() {
        let names = |granted: &[Capability]| -> Vec<&str> {
            let set: CapsHashSet = granted.iter().copied().collect();
            refused_for(&set).map(|(n, _)| n).collect()
        };
        let defaults = crate::container::security::DEFAULT_CAPS;
        let plain = names(defaults);
        assert_eq!(
            plain.len(),
            REFUSED.len(),
            "Docker's default capabilities lift nothing"
        );
        let mut with_admin = defaults.to_vec();
        with_admin.push(Capability::CAP_SYS_ADMIN);
        let admin = names(&with_admin);
        for lifted in ["mount", "umount2", "unshare", "setns", "pivot_root", "bpf"] {
            assert!(
                plain.contains(&lifted) && !admin.contains(&lifted),
                "{lifted}"
            );
        }
        for kept in ["swapon", "keyctl", "ptrace", "reboot", "kexec_load"] {
            assert!(admin.contains(&kept), "SYS_ADMIN must not lift {kept}");
        }
        let all: CapsHashSet = caps::all();
        let always: Vec<&str> = refused_for(&all).map(|(n, _)| n).collect();
        assert_eq!(
            always,
            [
                "add_key",
                "kexec_file_load",
                "kexec_load",
                "keyctl",
                "nfsservctl",
                "request_key",
                "swapoff",
                "swapon",
                "sysfs",
                "_sysctl",
                "uselib",
                "userfaultfd",
                "ustat"
            ]
        );
    }
}
