//! Choosing the accelerator: KVM only when it is proven to work, HVF on macOS, WHPX on
//! Windows, otherwise TCG (software emulation). The reason is kept for `berth info`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Hvf,
    Whpx,
    Tcg,
}

impl Accel {
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Hvf => "hvf",
            Accel::Whpx => "whpx",
            Accel::Tcg => "tcg",
        }
    }

    fn parse(s: &str) -> Option<Accel> {
        match s {
            "kvm" => Some(Accel::Kvm),
            "hvf" => Some(Accel::Hvf),
            "whpx" => Some(Accel::Whpx),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.qemu_name())
    }
}

/// The accelerator berth will use, and why.
#[derive(Debug, Clone)]
pub struct Choice {
    pub accel: Accel,
    pub reason: String,
}

/// Chooses the accelerator for this host. `BERTH_ACCEL` (kvm|hvf|whpx|tcg) overrides.
pub fn choose() -> Choice {
    if let Ok(forced) = std::env::var("BERTH_ACCEL") {
        if let Some(accel) = Accel::parse(forced.trim()) {
            return Choice {
                accel,
                reason: "set by BERTH_ACCEL".into(),
            };
        }
    }
    detect()
}

#[cfg(target_os = "linux")]
fn detect() -> Choice {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let kvm_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    linux_choice(kvm_usable, &cpuinfo)
}

/// The Linux decision, from whether /dev/kvm opens and the CPU flags.
///
/// A /dev/kvm that opens is not proof: some nested hosts expose a paravirtual KVM that only
/// runs specially patched guests and hangs a normal kernel. The CPU's own virtualization
/// flag (vmx or svm) is what a normal guest needs, so KVM is used only with both.
pub fn linux_choice(kvm_usable: bool, cpuinfo: &str) -> Choice {
    let has_virt_flag = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    match (kvm_usable, has_virt_flag) {
        (true, true) => Choice {
            accel: Accel::Kvm,
            reason: "/dev/kvm is usable and the CPU has hardware virtualization (vmx/svm)".into(),
        },
        (true, false) => Choice {
            accel: Accel::Tcg,
            reason: "/dev/kvm exists but the CPU shows no vmx/svm flag (a paravirtual nested KVM \
                     that hangs normal kernels); using software emulation"
                .into(),
        },
        (false, _) => Choice {
            accel: Accel::Tcg,
            reason: "/dev/kvm is missing or not accessible; using software emulation".into(),
        },
    }
}

#[cfg(target_os = "macos")]
fn detect() -> Choice {
    Choice {
        accel: Accel::Hvf,
        reason: "macOS Hypervisor.framework".into(),
    }
}

#[cfg(target_os = "windows")]
fn detect() -> Choice {
    Choice {
        accel: Accel::Whpx,
        reason: "Windows Hypervisor Platform".into(),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn detect() -> Choice {
    Choice {
        accel: Accel::Tcg,
        reason: "no hardware accelerator known on this OS".into(),
    }
}

/// The host's TSC frequency in kHz, from `/proc/cpuinfo` ("cpu MHz"). Under TCG the guest
/// TSC runs at the host's rate; telling the guest kernel (`tsc_early_khz=`) skips a
/// calibration that intermittently hangs `-M microvm` boots.
pub fn host_tsc_khz() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        parse_cpu_mhz(&cpuinfo)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

pub fn parse_cpu_mhz(cpuinfo: &str) -> Option<u64> {
    let line = cpuinfo.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    (mhz > 0.0).then(|| (mhz * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_needs_both_the_device_and_the_cpu_flag() {
        let with_vmx = "flags\t\t: fpu vme vmx sse\n";
        let without = "flags\t\t: fpu vme sse hypervisor\n";
        assert_eq!(linux_choice(true, with_vmx).accel, Accel::Kvm);
        let nested = linux_choice(true, without);
        assert_eq!(nested.accel, Accel::Tcg);
        assert!(nested.reason.contains("vmx/svm"));
        assert_eq!(linux_choice(false, with_vmx).accel, Accel::Tcg);
    }

    #[test]
    fn reads_cpu_mhz() {
        assert_eq!(
            parse_cpu_mhz("model\t: x\ncpu MHz\t\t: 2445.428\n"),
            Some(2445428)
        );
        assert_eq!(parse_cpu_mhz("nothing here"), None);
    }
}
