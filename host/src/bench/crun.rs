//! The yardstick for container start-up inside the guest: Debian's crun running (and
//! exec'ing into) a busybox bundle in a berth VM on the same kernel. crun and its shared
//! libraries, and the bundle, are appended to the initramfs as a second cpio archive (the
//! kernel unpacks both) in a private assets directory; the runs are timed by the guest's
//! own clock (`/proc/uptime`, 10 ms resolution, over a batch).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Per-operation means of `crun run` and `crun exec` measured in the guest.
pub struct CrunTimes {
    pub run: Duration,
    pub exec: Duration,
    pub batch: u32,
}

fn sh(script: &str, dir: &Path) -> Result<String, String> {
    let out = Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds assets whose initramfs also holds crun and a bundle; returns their directory.
fn crun_assets(assets: &Path, kernel: &str, work: &Path) -> Result<PathBuf, String> {
    let tree = work.join("tree");
    std::fs::create_dir_all(tree.join("bundle/rootfs/bin")).map_err(|e| e.to_string())?;
    sh(
        r#"crun=$(command -v crun) || { echo "crun is not installed (cargo xtask deps)" >&2; exit 1; }
        mkdir -p usr/bin && cp "$crun" usr/bin/crun
        for l in $(ldd "$crun" | grep -o '/lib[^ ]*'); do mkdir -p ".$(dirname $l)"; cp -L "$l" ".$l"; done
        cp "$(command -v busybox)" bundle/rootfs/bin/busybox
        for a in true sh sleep; do ln -sf busybox bundle/rootfs/bin/$a; done
        cd bundle && crun spec
        sed -i 's|"terminal": true|"terminal": false|; s|"readonly": true|"readonly": false|' config.json
        sed 's|"sh"|"/bin/true"|' config.json > run.json
        sed 's|"sh"|"/bin/sleep", "100000"|' config.json > sleep.json"#,
        &tree,
    )?;
    let out = work.join("assets");
    std::fs::create_dir_all(out.join("kernels")).map_err(|e| e.to_string())?;
    let extra = work.join("crun.cpio");
    sh(
        &format!("find . | cpio -o -H newc --quiet > {}", extra.display()),
        &tree,
    )?;
    let mut combined = std::fs::read(assets.join("initramfs.cpio")).map_err(|e| e.to_string())?;
    combined.extend(std::fs::read(&extra).map_err(|e| e.to_string())?);
    std::fs::write(out.join("initramfs.cpio"), combined).map_err(|e| e.to_string())?;
    sh(
        &format!(
            "cp -r {} {}",
            assets.join("kernels").join(kernel).display(),
            out.join("kernels").display()
        ),
        work,
    )?;
    // A kernel with its own initramfs (its modules) boots that one: crun goes there too.
    let own = out.join("kernels").join(kernel).join("initramfs.cpio");
    if own.is_file() {
        let mut bytes = std::fs::read(&own).map_err(|e| e.to_string())?;
        bytes.extend(std::fs::read(&extra).map_err(|e| e.to_string())?);
        std::fs::write(&own, bytes).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Runs `batch` of each in the guest, after one of each to warm up. A crun that fails
/// fails the measurement (`set -e`): a failed run never counts as a fast one.
pub fn measure(berth: &Path, assets: &Path, kernel: &str, batch: u32) -> Result<CrunTimes, String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let crun_assets = crun_assets(assets, kernel, work.path())?;
    // The guest as a machine's agent sets it up for containers (`vm run` does not): the
    // same cgroup controllers (a kernel without one of them gets a warning, as from the
    // agent), IPv4 forwarding (new network namespaces inherit it) and expedited RCU grace
    // periods (crun's container starts and ends wait for them as berth's do).
    let controllers = berth_protocol::CGROUP_CONTROLLERS;
    let script = format!(
        r#"set -e
echo '{controllers}' > /sys/fs/cgroup/cgroup.subtree_control || echo "crun yardstick: not every cgroup controller of '{controllers}' is in this kernel" >&2
echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /sys/kernel/rcu_expedited || echo "crun yardstick: this kernel has no /sys/kernel/rcu_expedited" >&2
cd /bundle
up() {{ cut -d' ' -f1 /proc/uptime; }}
cp run.json config.json; crun run w0
a=$(up); for i in $(seq {batch}); do crun run r$i; done; b=$(up)
echo "run $a $b"
mkdir -p /b2 && cp sleep.json /b2/config.json && ln -s /bundle/rootfs /b2/rootfs
crun run -d -b /b2 sl >/dev/null 2>&1 </dev/null
crun exec sl /bin/true
a=$(up); for i in $(seq {batch}); do crun exec sl /bin/true; done; b=$(up)
echo "exec $a $b"
crun kill sl KILL
"#
    );
    let home = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = Command::new(berth)
        .args([
            "vm", "run", "--kernel", kernel, "--cpus", "2", "--memory", "1G", "--", "sh", "-c",
            &script,
        ])
        .env("BERTH_HOME", home.path())
        .env("BERTH_ASSETS", &crun_assets)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("berth vm run: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let span = |what: &str| -> Result<Duration, String> {
        let line = text.lines().find(|l| l.starts_with(what)).ok_or_else(|| {
            format!(
                "no {what} timing from the guest: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect();
        match v[..] {
            [a, b] if b > a => Ok(Duration::from_secs_f64((b - a) / f64::from(batch))),
            _ => Err(format!("bad timing line {line:?}")),
        }
    };
    Ok(CrunTimes {
        run: span("run ")?,
        exec: span("exec ")?,
        batch,
    })
}
