//! Where berth keeps things: `BERTH_HOME` (state, logs, sockets) and the assets xtask
//! builds (kernels, initramfs). Shared contract with `cargo xtask`.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot find a data directory for berth: set BERTH_HOME")]
    NoDataDir,
    #[error("cannot create {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The directories of one berth installation.
#[derive(Debug, Clone)]
pub struct Paths {
    /// State: `$BERTH_HOME`, else the platform data dir + `berth`.
    pub home: PathBuf,
    /// Kernels and initramfs: `$BERTH_ASSETS`, else `<home>/assets`.
    pub assets: PathBuf,
}

impl Paths {
    pub fn from_env() -> Result<Paths, PathsError> {
        let home = match std::env::var_os("BERTH_HOME") {
            Some(h) if !h.is_empty() => PathBuf::from(h),
            _ => dirs::data_dir().ok_or(PathsError::NoDataDir)?.join("berth"),
        };
        let assets = match std::env::var_os("BERTH_ASSETS") {
            Some(a) if !a.is_empty() => PathBuf::from(a),
            _ => home.join("assets"),
        };
        Ok(Paths { home, assets })
    }

    /// Per-VM runtime directories (sockets, console logs) live here.
    pub fn run_dir(&self) -> Result<PathBuf, PathsError> {
        ensure(self.home.join("run"))
    }

    /// Console logs of failed boots are kept here.
    pub fn logs_dir(&self) -> Result<PathBuf, PathsError> {
        ensure(self.home.join("logs"))
    }
}

fn ensure(path: PathBuf) -> Result<PathBuf, PathsError> {
    std::fs::create_dir_all(&path).map_err(|source| PathsError::Create {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Finds an executable: `env_var` if set, else `name` on `PATH`, else in `extra` dirs.
pub fn find_program(env_var: &str, name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let exe = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .iter()
        .chain(extra)
        .map(|d| d.join(&exe))
        .find(|p| is_file(p))
}

fn is_file(p: &Path) -> bool {
    p.metadata().map(|m| m.is_file()).unwrap_or(false)
}

/// `$CARGO_HOME/bin` (or `~/.cargo/bin`), where `cargo install` puts backends.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".cargo")))
        .map(|c| c.join("bin"))
}
