//! Cold `berth vm run -- true` against two floors, each the same kernel booted with a
//! trivial static init that powers off at once:
//! - the device-matched floor: the QEMU flags and devices `vm run --transport serial`
//!   launches; the ratio is what berth (agent start, transport, handshake, exec,
//!   power-off) adds to the same VM;
//! - the bare floor: the same vmlinux on a microvm with no devices at all; the ratio is
//!   everything berth's VM costs beyond the kernel's own boot.
//!
//! The ratios are printed twice: from criterion's batches (each benchmark measured after
//! the other) and from a pass of rounds that take the four commands in turn, which a
//! shared machine's drift cannot put on one side only.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth::kernels;
use berth::qemu::{self, Chardev, Machine, TransportDevice};
use berth::{accel, paths::Paths};
use berth_bench::{
    alternating, bench_kernel, berth_bin, print_alternating_ratio, print_ratio, record,
    time_command,
};
use berth_protocol::boot::{AgentTransport, BootParams};
use criterion::{criterion_group, Criterion, SamplingMode};

const FLOOR: &str = "floor: same devices, boot + power-off";
const BARE: &str = "bare floor: no devices, boot + power-off";
/// Rounds of the alternating pass at the end (four cold boots each; a multiple of eight,
/// so that the order of the four is balanced).
const ROUNDS: usize = 16;

fn berth_run(home: &Path, transport: &str) -> Command {
    let mut cmd = Command::new(berth_bin());
    cmd.env("BERTH_HOME", home).args([
        "vm",
        "run",
        "--kernel",
        &bench_kernel(),
        "--transport",
        transport,
        "--",
        "true",
    ]);
    cmd
}

/// The QEMU command of the floor: what `berth vm run --transport serial` launches, with
/// the floor initramfs in place of berth's; `bare` drops every device.
fn floor_command(dir: &Path, bare: bool) -> Command {
    let paths = Paths::from_env().expect("berth paths");
    let kernel =
        kernels::resolve(&paths.assets, Some(&bench_kernel())).expect("bench kernel installed");
    let accel = accel::choose();
    let traits = kernel.launch_traits();
    let clock = qemu::GuestClock {
        tsc_khz: accel::host_tsc_khz(),
        tick_hz: traits.tick_hz,
        takes_lapic_timer_period: traits.takes_lapic_timer_period,
    };
    let spec = qemu::Spec {
        machine: Machine::Microvm,
        accel: accel.accel,
        cpus: 1,
        memory_mib: 512,
        ram: qemu::Ram::for_host(),
        kernel: kernel.image(true).to_path_buf(),
        initramfs: paths.assets.join("floor-init.cpio"),
        cmdline: qemu::cmdline(
            Machine::Microvm,
            accel.accel,
            clock,
            qemu::Probing::AsBuilt,
            &BootParams {
                transport: AgentTransport::Serial {
                    name: berth_protocol::SERIAL_PORT_NAME.to_string(),
                },
                ..BootParams::default()
            }
            .to_args(),
        ),
        console_log: dir.join("console.log"),
        transport: TransportDevice::Serial {
            chardev: Chardev::Unix(dir.join("agent.sock")),
            name: berth_protocol::SERIAL_PORT_NAME.to_string(),
        },
        disks: Vec::new(),
        uplink: qemu::Uplink::None,
        hostfwd: Vec::new(),
        shares: Vec::new(),
        share_fs: berth::shares::ShareFs::NineP,
        virtiofs_dir: dir.to_path_buf(),
        // What `vm run` launches has QEMU's control socket.
        qmp: cfg!(unix).then(|| dir.join("qmp.sock")),
        // One vCPU: its own TCG thread, as `vm run`'s.
        one_tcg_thread: false,
        pit: qemu::needs_pit(Machine::Microvm, accel.accel, clock),
    };
    // The QEMU berth itself launches ($BERTH_QEMU, else the one on PATH).
    let qemu = berth::paths::find_program("BERTH_QEMU", "qemu-system-x86_64", &[])
        .expect("QEMU (qemu-system-x86_64) not found: cargo xtask deps, or BERTH_QEMU");
    let mut cmd = Command::new(qemu);
    cmd.args(match bare {
        true => qemu::bare_args(&spec),
        false => qemu::args(&spec),
    });
    cmd
}

fn boot(c: &mut Criterion) {
    let home = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("cold boot");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20));

    for (name, bare) in [(FLOOR, false), (BARE, true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += time_command(&mut floor_command(home.path(), bare));
                }
                record(name, total, iters);
                total
            })
        });
    }
    for transport in ["serial", "vhost-user"] {
        let name = format!("berth vm run -- true ({transport})");
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += time_command(&mut berth_run(home.path(), transport));
                }
                record(&name, total, iters);
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, boot);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    for transport in ["serial", "vhost-user"] {
        for floor in [FLOOR, BARE] {
            print_ratio(&format!("berth vm run -- true ({transport})"), floor);
        }
    }
    // The ratios again, with the four commands taken in turn (see `alternating`).
    let home = tempfile::tempdir().expect("temp dir");
    let serial = "berth vm run -- true (serial)";
    let vhost = "berth vm run -- true (vhost-user)";
    let measured = alternating(
        ROUNDS,
        &mut [
            (FLOOR, &mut || floor_command(home.path(), false)),
            (serial, &mut || berth_run(home.path(), "serial")),
            (BARE, &mut || floor_command(home.path(), true)),
            (vhost, &mut || berth_run(home.path(), "vhost-user")),
        ],
    );
    for name in [serial, vhost] {
        for floor in [FLOOR, BARE] {
            print_alternating_ratio(&measured, name, floor);
        }
    }
}
