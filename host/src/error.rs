//! The error type of the `berth` CLI, and its mapping to Docker's exit codes.

use std::error::Error as StdError;

/// Every way a berth command can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Paths(#[from] crate::paths::PathsError),
    #[error(transparent)]
    Kernel(#[from] crate::kernels::KernelError),
    #[error(transparent)]
    KernelAdd(#[from] crate::kernels::add::AddError),
    #[error(transparent)]
    Vm(#[from] crate::vm::VmError),
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    #[error(transparent)]
    Agent(#[from] crate::client::ClientError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Registry(#[from] crate::image::registry::RegistryError),
    #[error("invalid argument: {0}")]
    Usage(String),
    #[error("{message}")]
    Exec { code: i32, message: String },
    #[error(transparent)]
    Machine(#[from] crate::machine::MachineError),
    #[error("{0}")]
    Daemon(String),
    #[error("Error response from daemon: {message}")]
    Api { status: u16, message: String },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// 125 when berth itself failed; 126/127 when the command could not be invoked or found.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec { code, .. } => *code,
            // As the docker CLI: a daemon's refusal of a plain command exits 1.
            Error::Api { .. } => 1,
            // As `docker pull` and `docker push`: a registry's refusal exits 1.
            Error::Registry(_) => 1,
            _ => 125,
        }
    }
}

/// The message of `e` followed by each of its sources, as `a: b: c`.
pub fn chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_walks_every_source() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&e), "outer: inner");
    }

    #[test]
    fn exit_codes_follow_docker() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 125);
        let image = crate::image::ImageError::Unsupported("zstd".into());
        assert_eq!(Error::from(image).exit_code(), 125);
        assert_eq!(
            Error::Exec {
                code: 127,
                message: "nf".into()
            }
            .exit_code(),
            127
        );
    }
}
