//! `cargo xtask deps`: install what berth needs on the host.

use anyhow::Result;

use crate::cmd::Cmd;

/// Debian packages: QEMU, kernel sources, the kernel build toolchain,
/// busybox for the initramfs, and what the tests use.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-utils",
    "linux-source-6.1",
    "linux-source-6.12",
    "busybox-static",
    "cpio",
    "bc",
    "flex",
    "bison",
    "libelf-dev",
    "libssl-dev",
    "xz-utils",
    // Applies berth's own patches (kernel-config/patches/) to the tuned kernels' sources.
    "patch",
    "kmod",
    "e2fsprogs",
    "tmux",
    "make",
    "gcc",
    "crun",
    // rustables (nftables over netlink, in the guest) generates its bindings with bindgen.
    "libclang-dev",
    // The tests' HTTP client on the host (busybox wget crashes).
    "curl",
    // The registry tests: the CNCF distribution registry, skopeo as an independent
    // client, openssl to sign the bearer-token test's tokens, apache2-utils for htpasswd.
    "docker-registry",
    "skopeo",
    "openssl",
    "apache2-utils",
    // Real Docker API clients: compose 1.29 (with docker-py underneath), and a venv for
    // today's docker-py and testcontainers from PyPI.
    "docker-compose",
    "python3-venv",
    // virtiofsd links them (cargo builds it).
    "libseccomp-dev",
    "libcap-ng-dev",
];

/// The Python clients the VM tests drive berth with, from PyPI, in their own venv.
const PYTHON_CLIENTS: &[&str] = &["docker>=7,<8", "testcontainers>=4,<5"];

/// The venv of [`PYTHON_CLIENTS`]: `<cache>/python-clients`.
pub fn python_clients_venv() -> Result<std::path::PathBuf> {
    Ok(crate::assets::cache_dir()?.join("python-clients"))
}

/// vhost-user backends QEMU talks to, not packaged by Debian 12, installed with cargo:
/// (crate and binary, version). The vsock device is one of berth's transports; virtiofsd
/// shares host folders over virtiofs (kernels without 9p, such as Debian's cloud kernel).
/// cargo-nextest runs the VM tier (a JUnit report per kernel for the test matrix).
const CARGO_TOOLS: &[(&str, &str)] = &[
    ("vhost-device-vsock", "0.3.0"),
    ("virtiofsd", "1.14.0"),
    ("cargo-nextest", "0.9.143"),
];

pub fn run() -> Result<()> {
    platform::install()
}

/// The version of an installed Debian package, or `None` if it is not installed.
pub fn installed_version(package: &str) -> Result<Option<String>> {
    let out = Cmd::new("dpkg-query")
        .args(["-W", "-f=${Status}\t${Version}", package])
        .read_optional()?;
    Ok(out.and_then(|line| {
        let (status, version) = line.split_once('\t')?;
        is_installed(status).then(|| version.trim().to_owned())
    }))
}

/// `dpkg-query`'s `${Status}` is "install ok installed" for an installed package.
fn is_installed(status: &str) -> bool {
    status.split_whitespace().last() == Some("installed")
}

#[cfg(target_os = "linux")]
mod platform {
    use std::path::PathBuf;

    use anyhow::{Context, Result};

    use super::*;
    use crate::cmd::find_on_path;

    pub fn install() -> Result<()> {
        if find_on_path("apt-get").is_some() && find_on_path("dpkg-query").is_some() {
            install_debian_packages()?;
        } else {
            println!("warning: no apt-get here; install the equivalents of these Debian packages yourself:");
            println!("  {}", DEBIAN_PACKAGES.join(" "));
        }
        install_cargo_tools()?;
        install_python_clients()?;
        println!("deps: all installed");
        Ok(())
    }

    fn missing_packages() -> Result<Vec<&'static str>> {
        println!("checking Debian packages");
        // One query for all; dpkg-query exits non-zero if it knows some of them not at all, so
        // whatever it does not report as installed is missing.
        let out = Cmd::new("dpkg-query")
            .args(["-W", "-f=${Package}\t${Status}\n"])
            .args(DEBIAN_PACKAGES)
            .read_any_status()?;
        let installed: Vec<&str> = out
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(_, status)| is_installed(status))
            .map(|(package, _)| package)
            .collect();
        Ok(DEBIAN_PACKAGES
            .iter()
            .copied()
            .filter(|p| !installed.contains(p))
            .collect())
    }

    fn install_debian_packages() -> Result<()> {
        let missing = missing_packages()?;
        if missing.is_empty() {
            println!("Debian packages: all {} present", DEBIAN_PACKAGES.len());
            return Ok(());
        }
        println!("Debian packages missing: {}", missing.join(" "));
        let sudo = needs_sudo()?;
        let apt = |args: &[&str]| {
            let cmd = if sudo {
                Cmd::new("sudo")
                    .arg("DEBIAN_FRONTEND=noninteractive")
                    .arg("apt-get")
            } else {
                Cmd::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive")
            };
            cmd.args(args)
        };
        apt(&["update"]).run()?;
        apt(&["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .run()
    }

    /// Whether apt needs `sudo`: when we are not root and sudo exists.
    fn needs_sudo() -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self")
            .context("reading /proc/self to find our user id")?
            .uid();
        if uid == 0 {
            return Ok(false);
        }
        let sudo = find_on_path("sudo").is_some();
        if !sudo {
            println!("warning: not root and no sudo; trying apt-get as this user");
        }
        Ok(sudo)
    }

    fn install_python_clients() -> Result<()> {
        let venv = python_clients_venv()?;
        let python = venv.join("bin/python");
        let check = "import docker, testcontainers; assert docker.__version__.startswith('7.')";
        if python.is_file()
            && Cmd::new(&python)
                .args(["-c", check])
                .read_optional()?
                .is_some()
        {
            println!("python clients: found in {}", venv.display());
            return Ok(());
        }
        println!(
            "python clients: installing {} into {}",
            PYTHON_CLIENTS.join(" "),
            venv.display()
        );
        Cmd::new("python3").args(["-m", "venv"]).arg(&venv).run()?;
        Cmd::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(PYTHON_CLIENTS)
            .run()
    }

    fn install_cargo_tools() -> Result<()> {
        for (tool, version) in CARGO_TOOLS {
            let cargo_bin = std::env::var_os("CARGO_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| dirs::home_dir().map(|home| home.join(".cargo")))
                .map(|home| home.join("bin").join(tool));
            let found = find_on_path(tool).or(cargo_bin.filter(|p| p.is_file()));
            if let Some(path) = found {
                println!("{tool}: found at {}", path.display());
                continue;
            }
            println!("{tool}: not found, installing with cargo");
            Cmd::cargo()
                .args(["install", tool, "--version", version, "--locked"])
                .run()?;
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use super::*;

    pub fn install() -> Result<()> {
        let qemu = if cfg!(target_os = "macos") {
            "brew install qemu"
        } else if cfg!(windows) {
            "choco install qemu   (or in MSYS2: pacman -S mingw-w64-ucrt-x86_64-qemu)"
        } else {
            "install QEMU (qemu-system-x86_64) with your package manager"
        };
        println!("berth on this platform needs:");
        println!("  - QEMU: {qemu}");
        println!("  - the Rust target for the host CLI (already installed if `cargo build -p berth` works)");
        println!("Guest kernels, the initramfs and the static guest binaries are built on Linux:");
        println!("  run `cargo xtask assets` on a Debian 12 machine (or VM) and copy its assets");
        println!("  directory here, pointing BERTH_ASSETS at it.");
        println!("Nothing was installed automatically.");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parsing() {
        assert!(is_installed("install ok installed"));
        assert!(!is_installed("deinstall ok config-files"));
        assert!(!is_installed(""));
    }
}
