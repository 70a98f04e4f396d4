//! The benchmark floor: a static init that powers the VM off at once. Booting it with the
//! same kernel and QEMU flags as berth measures what berth itself adds to a VM start.

fn main() {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
}
