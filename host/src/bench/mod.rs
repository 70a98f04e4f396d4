//! `berth bench`: the container-vs-VM report, measured on the user's own machine and the
//! kernels they name. Each measure is taken several times and reported as the median with
//! its spread (min and max); every VM has the machine's size (2 vCPUs, 1 GiB) and runs
//! alone; every machine's uplink is restricted. Measures:
//! - start-up: a cold VM to a command (`vm run -- true`), a cold container (machine boot
//!   included), a container on a running machine, an exec, and crun run/exec in the same
//!   guest as the runtime yardstick (when crun is installed);
//! - memory: the host RSS of QEMU and the daemon for one idle machine, the guest's used
//!   memory and the agent's RSS, and the guest memory each idle container adds;
//! - density: idle containers that one machine holds within a memory budget, against idle
//!   VMs in the same budget (from the measured per-instance memory);
//! - CPU and I/O: a fixed shell loop and a tmpfs write/read, in a container, directly in
//!   the guest, and on the host.
//!
//! `report.rs` prints the table, writes the JSON and draws an SVG chart per measure.

pub mod crun;
mod measure;
pub mod report;
pub mod settle;

use std::path::PathBuf;

use serde::Serialize;

pub use measure::run_kernel;

/// What to measure and how much.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The berth binary to drive (this one).
    pub berth: PathBuf,
    pub assets: PathBuf,
    /// A `docker save` archive with busybox (the test image by default).
    pub image: PathBuf,
    /// Repetitions of each start-up measure.
    pub runs: usize,
    /// Idle containers started for the per-container memory.
    pub containers: usize,
    /// The density budget, MiB.
    pub budget_mib: u64,
    /// Iterations of the CPU loop; MiB written and read for I/O.
    pub loop_iterations: u64,
    pub io_mib: u64,
}

impl Plan {
    pub fn new(berth: PathBuf, assets: PathBuf, image: PathBuf, quick: bool) -> Plan {
        Plan {
            berth,
            assets,
            image,
            runs: if quick { 3 } else { 7 },
            containers: if quick { 4 } else { 16 },
            budget_mib: if quick { 512 } else { 4096 },
            loop_iterations: if quick { 300_000 } else { 1_000_000 },
            io_mib: if quick { 64 } else { 256 },
        }
    }
}

/// Several runs of one measure: the median, and the spread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Stat {
    pub fn of(samples: &[f64]) -> Option<Stat> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = match n % 2 {
            1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[n - 1],
            runs: n,
        })
    }
}

/// Start-up, seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Startup {
    pub cold_vm: Option<Stat>,
    pub cold_container: Option<Stat>,
    pub warm_container: Option<Stat>,
    pub exec: Option<Stat>,
    pub crun_run: Option<Stat>,
    pub crun_exec: Option<Stat>,
}

/// Memory, MiB.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    pub qemu_rss: Option<f64>,
    pub daemon_rss: Option<f64>,
    pub guest_used: Option<f64>,
    pub agent_rss: Option<f64>,
    pub per_container: Option<f64>,
}

/// Density within a budget.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Density {
    pub budget_mib: u64,
    pub containers: Option<u64>,
    pub vms: Option<u64>,
}

/// CPU loop and tmpfs I/O, seconds: in a container, in the guest, on the host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overhead {
    pub container: Option<Stat>,
    pub guest: Option<Stat>,
    pub host: Option<Stat>,
}

/// Everything measured on one kernel, and what could not be (with the reason).
#[derive(Debug, Clone, Default, Serialize)]
pub struct KernelReport {
    pub kernel: String,
    pub release: String,
    pub startup: Startup,
    pub memory: Memory,
    pub density: Density,
    pub cpu: Overhead,
    pub io_write: Overhead,
    pub io_read: Overhead,
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_medians_with_their_spread() {
        let s = Stat::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        assert_eq!(Stat::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Stat::of(&[]).is_none());
    }
}
