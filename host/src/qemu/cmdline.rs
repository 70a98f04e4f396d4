//! The guest kernel's command line: console, reboot and clock hints under TCG, device
//! probing, then berth's own parameters and the user's. Pure functions, no IO.

use super::Machine;
use crate::accel::Accel;

/// What the host tells a guest kernel about its clocks, so that it measures none of them
/// at boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestClock {
    /// The TSC's frequency: the host's, which a TCG guest's TSC runs at.
    pub tsc_khz: Option<u64>,
    /// The guest kernel's timer frequency (`CONFIG_HZ`).
    pub tick_hz: Option<u64>,
    /// Whether the guest kernel takes its local APIC timer's rate from the command line
    /// (`LaunchTraits::takes_lapic_timer_period`).
    pub takes_lapic_timer_period: bool,
}

/// The rate QEMU's emulated local APIC timer counts at under TCG: one count per nanosecond
/// of its virtual clock before the divider (a kernel's own measurement says 999.4 MHz).
const TCG_APIC_TIMER_HZ: u64 = 1_000_000_000;

/// How the guest kernel probes its devices as it boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probing {
    /// As the kernel was built to. A `vm run` boots the kernel under test as it is.
    AsBuilt,
    /// Every driver's probe asynchronous (`driver_async_probe=*`): a second vCPU probes
    /// the devices (the disk's is the slowest, about 15 ms under TCG) while the first
    /// goes on with the boot, which waits for them all before it runs init. Devices of one
    /// kind may then be named in any order: a machine has one disk. A kernel too old for
    /// the wildcard probes as before.
    Parallel,
}

impl Probing {
    /// A machine's: in parallel where there is a second vCPU to do it. Measured on a
    /// 2-vCPU machine: its agent answered 18 ms sooner (paired median of 16 cold starts,
    /// alternating, won 11).
    pub fn for_machine(cpus: u32) -> Probing {
        match cpus > 1 {
            true => Probing::Parallel,
            false => Probing::AsBuilt,
        }
    }
}

/// Whether [`cmdline`] tells the kernel its TSC's frequency (`tsc_early_khz=`).
pub fn told_tsc_frequency(machine: Machine, accel: Accel, clock: GuestClock) -> bool {
    machine == Machine::Microvm && accel == Accel::Tcg && clock.tsc_khz.is_some()
}

/// Whether [`cmdline`] tells the kernel its APIC timer's rate (`lapic_timer_period=`).
pub fn told_apic_timer_rate(accel: Accel, clock: GuestClock) -> bool {
    accel == Accel::Tcg && clock.takes_lapic_timer_period && clock.tick_hz.is_some()
}

/// The guest kernel command line.
pub fn cmdline(
    machine: Machine,
    accel: Accel,
    clock: GuestClock,
    probing: Probing,
    agent_params: &[String],
) -> String {
    let mut c = vec![
        "console=ttyS0".to_string(),
        // Kernel messages below warnings stay off the (slow, emulated) serial console.
        "loglevel=4".into(),
        // Reboot by triple fault: with -no-reboot, the fastest way to end QEMU on any machine.
        "reboot=t".into(),
        "panic=-1".into(),
        "rdinit=/init".into(),
    ];
    if let (true, Some(khz)) = (told_tsc_frequency(machine, accel, clock), clock.tsc_khz) {
        c.push(format!("tsc_early_khz={khz}"));
        // Every CPU but the first measures its delay loop at boot, because the emulated
        // CPU does not say that its TSC is constant: for about 70 ms, which the boot waits
        // out (a second CPU is brought up only once it is done). `lpj` gives each the
        // figure that the first takes from the TSC's frequency: TSC cycles per tick.
        // Measured: `vm run --cpus 2 -- true` 88 ms sooner (paired median of 20 rounds,
        // won 20). Without the kernel's tick rate there is no right figure: none is given.
        if let Some(hz) = clock.tick_hz {
            c.push(format!("lpj={}", khz * 1000 / hz));
        }
    }
    if accel == Accel::Tcg {
        // Under TCG every vCPU reads one TSC (QEMU's clock), but the emulated CPU does not
        // say its TSC is invariant, so a kernel with two CPUs or more marked it unstable
        // and kept time with jiffies: 4 ms steps, no high-resolution timers, and a system
        // call for every clock read.
        c.push("tsc=reliable".into());
        // The APIC timer's clocks per tick, which a kernel otherwise measures against the
        // TSC for 100 ms of every boot; only a kernel with berth's patch takes it. Measured
        // (with the patch that frees init memory unpoisoned): `vm run --cpus 2 -- true`
        // 721 -> 535 ms, medians of 6 alternating rounds.
        if let (true, Some(hz)) = (told_apic_timer_rate(accel, clock), clock.tick_hz) {
            c.push(format!(
                "{}={}",
                berth_protocol::kernel::LAPIC_TIMER_PERIOD_KEY,
                TCG_APIC_TIMER_HZ / hz
            ));
        }
    }
    if probing == Probing::Parallel {
        c.push("driver_async_probe=*".into());
    }
    c.extend(agent_params.iter().cloned());
    c.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tsc(khz: u64) -> GuestClock {
        GuestClock {
            tsc_khz: Some(khz),
            tick_hz: None,
            takes_lapic_timer_period: false,
        }
    }

    #[test]
    fn the_delay_loop_figure_comes_from_the_tsc_and_the_tick_rate() {
        let p = Vec::new();
        let clock = GuestClock {
            tsc_khz: Some(2_596_134),
            tick_hz: Some(250),
            takes_lapic_timer_period: false,
        };
        let line = cmdline(Machine::Microvm, Accel::Tcg, clock, Probing::AsBuilt, &p);
        assert!(line.contains(" lpj=10384536"), "{line}");
        // Not without the tick rate, nor where no TSC frequency is given.
        for (machine, accel, clock) in [
            (Machine::Microvm, Accel::Tcg, tsc(2_596_134)),
            (Machine::Pc, Accel::Tcg, clock),
            (Machine::Microvm, Accel::Kvm, clock),
        ] {
            let line = cmdline(machine, accel, clock, Probing::AsBuilt, &p);
            assert!(!line.contains("lpj="), "{machine:?} {accel:?}: {line}");
        }
    }

    #[test]
    fn the_apic_timer_rate_goes_to_a_kernel_that_takes_it_under_tcg_only() {
        let p = Vec::new();
        let clock = GuestClock {
            tsc_khz: Some(2_596_134),
            tick_hz: Some(250),
            takes_lapic_timer_period: true,
        };
        // QEMU's 1 GHz APIC timer: 4,000,000 clocks per tick at 250 Hz, on any machine type.
        for machine in [Machine::Microvm, Machine::Pc] {
            let line = cmdline(machine, Accel::Tcg, clock, Probing::AsBuilt, &p);
            assert!(line.contains(" lapic_timer_period=4000000"), "{line}");
        }
        let line = cmdline(
            Machine::Microvm,
            Accel::Tcg,
            GuestClock {
                tick_hz: Some(1000),
                ..clock
            },
            Probing::AsBuilt,
            &p,
        );
        assert!(line.contains(" lapic_timer_period=1000000"), "{line}");
        // Not to a kernel without the patch, nor without its tick rate, nor under KVM
        // (whose APIC timer is the host's own).
        for (accel, clock) in [
            (
                Accel::Tcg,
                GuestClock {
                    takes_lapic_timer_period: false,
                    ..clock
                },
            ),
            (
                Accel::Tcg,
                GuestClock {
                    tick_hz: None,
                    ..clock
                },
            ),
            (Accel::Kvm, clock),
        ] {
            let line = cmdline(Machine::Microvm, accel, clock, Probing::AsBuilt, &p);
            assert!(
                !line.contains("lapic_timer_period"),
                "{accel:?} {clock:?}: {line}"
            );
        }
    }

    #[test]
    fn tsc_hint_only_for_microvm_under_tcg() {
        let p = vec!["berth.transport=vsock".to_string()];
        assert!(cmdline(
            Machine::Microvm,
            Accel::Tcg,
            tsc(2600000),
            Probing::AsBuilt,
            &p
        )
        .contains("tsc_early_khz=2600000"));
        assert!(
            !cmdline(Machine::Pc, Accel::Tcg, tsc(2600000), Probing::AsBuilt, &p)
                .contains("tsc_early_khz")
        );
        assert!(!cmdline(
            Machine::Microvm,
            Accel::Kvm,
            tsc(2600000),
            Probing::AsBuilt,
            &p
        )
        .contains("tsc_early_khz"));
        assert!(cmdline(
            Machine::Microvm,
            Accel::Tcg,
            GuestClock::default(),
            Probing::AsBuilt,
            &p
        )
        .ends_with("berth.transport=vsock"));
    }

    #[test]
    fn a_machine_with_a_second_vcpu_probes_its_devices_in_parallel() {
        let p = vec!["berth.transport=vsock".to_string()];
        let line = |probing| {
            cmdline(
                Machine::Microvm,
                Accel::Tcg,
                GuestClock::default(),
                probing,
                &p,
            )
        };
        assert_eq!(Probing::for_machine(2), Probing::Parallel);
        assert_eq!(Probing::for_machine(1), Probing::AsBuilt);
        let parallel = line(Probing::Parallel);
        assert!(parallel.contains(" driver_async_probe=* "), "{parallel}");
        // Berth's own parameters and the user's come after, as for every VM.
        assert!(parallel.ends_with("berth.transport=vsock"), "{parallel}");
        assert!(!line(Probing::AsBuilt).contains("driver_async_probe"));
    }
}
