//! `cargo xtask kernel`: guest kernels, installed into `assets/kernels/<name>/`.
//!
//! Two tuned lines (6.1, 6.12) are built from Debian's kernel sources with berth's config
//! fragments; the others are Debian's prebuilt packages (cloud 6.1 and 6.12, generic 6.1,
//! rt 6.12), added with `berth kernel add`.

mod debian;
mod tuned;

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    V6_1,
    V6_12,
    Cloud,
    Cloud6_12,
    Generic6_1,
    Rt6_12,
}

impl Kernel {
    pub const ALL: [Kernel; 6] = [
        Kernel::V6_1,
        Kernel::V6_12,
        Kernel::Cloud,
        Kernel::Cloud6_12,
        Kernel::Generic6_1,
        Kernel::Rt6_12,
    ];

    /// The name used on the command line, in `assets/kernels/<name>` and by `berth --kernel`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::V6_1 => "6.1",
            Kernel::V6_12 => "6.12",
            Kernel::Cloud => debian::CLOUD_6_1.name,
            Kernel::Cloud6_12 => debian::CLOUD_6_12.name,
            Kernel::Generic6_1 => debian::GENERIC_6_1.name,
            Kernel::Rt6_12 => debian::RT_6_12.name,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl FromStr for Kernel {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::from_name(name).ok_or_else(|| {
            format!(
                "unknown kernel {name:?}: expected {}",
                Kernel::ALL.map(Kernel::name).join(", ")
            )
        })
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses kernel names: each item may be a comma-separated list; `all` means every kernel.
/// Duplicates are dropped, the first mention keeps its place.
pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<Kernel>> {
    let mut kernels = Vec::new();
    for name in items
        .iter()
        .flat_map(|item| item.as_ref().split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let named = match (name, Kernel::from_name(name)) {
            ("all", _) => Kernel::ALL.to_vec(),
            (_, Some(kernel)) => vec![kernel],
            (_, None) => bail!(
                "unknown kernel {name:?}: expected {} or all",
                Kernel::ALL.map(Kernel::name).join(", ")
            ),
        };
        for kernel in named {
            if !kernels.contains(&kernel) {
                kernels.push(kernel);
            }
        }
    }
    if kernels.is_empty() {
        bail!("no kernel named");
    }
    Ok(kernels)
}

/// The cloud kernel's package in the cache, downloaded when missing (the VM test of
/// `berth kernel add` adds it itself).
pub fn fetch_cloud_package() -> Result<std::path::PathBuf> {
    debian::fetch(debian::CLOUD_6_1)
}

/// Builds (or finds cached) and installs each kernel. With `dry_run`, only reports what it
/// would do.
pub fn install(kernels: &[Kernel], dry_run: bool) -> Result<()> {
    if !cfg!(target_os = "linux") {
        bail!(
            "guest kernels are built on Linux (Debian 12): run `cargo xtask assets` there \
             and point BERTH_ASSETS at the result"
        );
    }
    for &kernel in kernels {
        match kernel {
            Kernel::V6_1 | Kernel::V6_12 => tuned::install(kernel.name(), dry_run)?,
            Kernel::Cloud => debian::install(debian::CLOUD_6_1, dry_run)?,
            Kernel::Cloud6_12 => debian::install(debian::CLOUD_6_12, dry_run)?,
            Kernel::Generic6_1 => debian::install(debian::GENERIC_6_1, dry_run)?,
            Kernel::Rt6_12 => debian::install(debian::RT_6_12, dry_run)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(
            parse_list(&["6.1,cloud"]).unwrap(),
            [Kernel::V6_1, Kernel::Cloud]
        );
        assert_eq!(
            parse_list(&["cloud", "all"]).unwrap(),
            [
                Kernel::Cloud,
                Kernel::V6_1,
                Kernel::V6_12,
                Kernel::Cloud6_12,
                Kernel::Generic6_1,
                Kernel::Rt6_12
            ]
        );
        assert_eq!(parse_list(&["rt-6.12"]).unwrap(), [Kernel::Rt6_12]);
        assert_eq!(parse_list(&["6.12", "6.12"]).unwrap(), [Kernel::V6_12]);
        assert!(parse_list(&["6.2"]).is_err());
        assert!(parse_list::<&str>(&[]).is_err());
    }
}
