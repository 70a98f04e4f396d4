//! Host folders a machine shares with its guest (virtio-9p), for `-v /host/dir:/path`.
//!
//! A machine shares the user's home and the temp dir by default (`berth machine start
//! --share DIR` adds more). Each shared folder becomes a QEMU 9p device with its own
//! mount tag; the guest agent mounts it at boot at `/mnt/host<path>`, so a host path has
//! one guest path and the guest needs no table. The host path travels on the kernel
//! command line, percent-encoded (one token, whatever the path holds).

use std::path::{Path, PathBuf};

use berth_protocol::boot::BootShare;

/// One shared folder: a canonical host directory and the 9p mount tag of its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub tag: String,
    pub path: PathBuf,
}

impl Share {
    /// How the kernel command line announces this share to the guest.
    pub fn boot_share(&self) -> BootShare {
        BootShare {
            tag: self.tag.clone(),
            path: self.path.to_string_lossy().into_owned(),
        }
    }
}

/// How shared folders reach the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareFs {
    /// virtio-9p, served by QEMU itself: every QEMU host OS, kernels with 9p.
    NineP,
    /// virtiofs, one `virtiofsd` (vhost-user) per folder: kernels without 9p (Debian's
    /// cloud kernel), Linux hosts where virtiofsd is installed.
    Virtiofs,
}

impl ShareFs {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareFs::NineP => "9p",
            ShareFs::Virtiofs => "virtiofs",
        }
    }

    /// Resolves a machine's `--share-fs` (`auto`, `9p` or `virtiofs`): `auto` is virtiofs
    /// where virtiofsd is installed, else 9p.
    pub fn choose(setting: &str) -> Result<ShareFs, String> {
        match setting {
            "9p" => Ok(ShareFs::NineP),
            "virtiofs" if virtiofsd().is_some() => Ok(ShareFs::Virtiofs),
            "virtiofs" => Err("--share-fs virtiofs: virtiofsd not found (`cargo install virtiofsd`, or set BERTH_VIRTIOFSD)".into()),
            "auto" if virtiofsd().is_some() && cfg!(target_os = "linux") => Ok(ShareFs::Virtiofs),
            "auto" => Ok(ShareFs::NineP),
            other => Err(format!("--share-fs {other:?}: expected auto, 9p or virtiofs")),
        }
    }
}

/// The virtiofsd binary: `$BERTH_VIRTIOFSD`, the PATH, cargo's bin folder, or where
/// distributions put it.
pub fn virtiofsd() -> Option<PathBuf> {
    let mut extra: Vec<PathBuf> = crate::paths::cargo_bin_dir().into_iter().collect();
    extra.push("/usr/libexec".into());
    extra.push("/usr/lib/qemu".into());
    crate::paths::find_program("BERTH_VIRTIOFSD", "virtiofsd", &extra)
}

/// The folders a machine shares when none are configured: the home and the temp dir.
pub fn default_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = home_dir().into_iter().collect();
    dirs.push(std::env::temp_dir());
    dirs
}

fn home_dir() -> Option<PathBuf> {
    let var = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    std::env::var_os(var)
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The shares of a machine configured with `dirs`: each made canonical (symlinks
/// resolved, so containment checks see real paths); folders that do not exist are left
/// out, as are folders inside another shared one (already shared through it). Tags are
/// `berth0`, `berth1`, ... in order.
pub fn resolve(dirs: &[PathBuf]) -> Vec<Share> {
    let mut canon: Vec<PathBuf> = Vec::new();
    for d in dirs {
        match std::fs::canonicalize(d) {
            Ok(p) if p.is_dir() => canon.push(p),
            Ok(_) => tracing::warn!("not sharing {}: not a directory", d.display()),
            Err(e) => tracing::warn!("not sharing {}: {e}", d.display()),
        }
    }
    let kept: Vec<PathBuf> = canon
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            !canon
                .iter()
                .enumerate()
                .any(|(j, q)| (p.starts_with(q) && *p != q) || (*p == q && j < *i))
        })
        .map(|(_, p)| p.clone())
        .collect();
    kept.into_iter()
        .enumerate()
        .map(|(i, path)| Share {
            tag: format!("berth{i}"),
            path,
        })
        .collect()
}

/// The share holding `path` (a canonical path), if any.
pub fn containing<'a>(shares: &'a [Share], path: &Path) -> Option<&'a Share> {
    shares.iter().find(|s| path.starts_with(&s.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_missing_and_repeated_folders_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let (a, b) = (root.join("a"), root.join("b"));
        std::fs::create_dir_all(a.join("inner")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(root.join("file"), "x").unwrap();
        let shares = resolve(&[
            a.join("inner"),
            a.clone(),
            root.join("missing"),
            root.join("file"),
            b.join("../b"),
            b.clone(),
        ]);
        let paths: Vec<_> = shares.iter().map(|s| s.path.clone()).collect();
        assert_eq!(paths, [a.clone(), b.clone()]);
        assert_eq!(shares[1].tag, "berth1");
        assert_eq!(
            containing(&shares, &a.join("inner/x")).map(|s| &s.tag),
            Some(&"berth0".to_string())
        );
        assert!(containing(&shares, &root.join("ab")).is_none());
        assert_eq!(shares[0].boot_share().path, a.to_string_lossy());
    }
}
