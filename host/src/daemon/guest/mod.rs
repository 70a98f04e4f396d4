//! The engine's view of the guest agent: one trait, [`GuestApi`], with the real
//! connection ([`agent::Guest`]) and, in tests, a fake ([`fake::FakeGuest`]) that plays
//! containers in memory, so the engine's lifecycle is unit-tested without a VM.

pub mod agent;
#[cfg(test)]
pub mod fake;

use std::path::PathBuf;

use berth_mux::Stream;
use berth_protocol::{
    ContainerOp, ContainerResult, ContainerSet, ExecSpec, GuestMessage, PortProto, TtySize,
};
use tokio::sync::mpsc;

pub use agent::Guest;

use crate::client::ClientError;

/// A process started in the guest: its streams and its events (`Started`, `Exited`,
/// `Error`). The event channel ends when the guest connection is lost.
pub struct GuestExec {
    pub id: u64,
    pub stdin: Option<Stream>,
    pub stdout: Stream,
    pub stderr: Stream,
    pub events: mpsc::UnboundedReceiver<GuestMessage>,
}

/// What the guest's disk holds for containers and volumes, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    pub containers: std::collections::HashMap<String, u64>,
    pub volumes: std::collections::HashMap<String, u64>,
}

/// What the engine asks of the guest.
#[async_trait::async_trait]
pub trait GuestApi: Send + Sync + 'static {
    /// Starts a process (a container's first process, or one joined to a container).
    async fn exec(&self, spec: ExecSpec) -> Result<GuestExec, ClientError>;
    /// Stops routing the events of a finished process.
    fn exec_done(&self, exec_id: u64);
    async fn signal(&self, exec_id: u64, signal: i32) -> Result<(), ClientError>;
    async fn resize(&self, exec_id: u64, size: TtySize) -> Result<(), ClientError>;
    /// One container operation (freeze, thaw, stats, top).
    async fn container_op(&self, id: &str, op: ContainerOp)
        -> Result<ContainerResult, ClientError>;
    /// Deletes a volume's data; the inner error says why it could not be.
    async fn remove_volume(&self, name: &str) -> Result<Result<(), String>, ClientError>;
    /// Deletes the kept files of containers that are not running (`docker rm`, or the
    /// left-overs of containers the daemon no longer knows).
    async fn remove_container_files(
        &self,
        which: ContainerSet,
    ) -> Result<Result<(), String>, ClientError>;
    /// Bytes used by each container's writable layer and each volume in the guest.
    async fn disk_usage(&self) -> Result<DiskUsage, ClientError>;
    /// Makes a bridge network's bridge ahead of its first container; the inner error
    /// says why it could not be made.
    async fn prepare_network(
        &self,
        network: berth_protocol::BridgeNetwork,
    ) -> Result<Result<(), String>, ClientError>;
    /// Makes sure the guest's layer cache holds every `(digest, blob path)`.
    async fn ensure_layers(&self, layers: &[(String, PathBuf)]) -> Result<(), ClientError>;
    /// Whether the guest's layer list is at hand, so that `ensure_layers` asks the guest
    /// nothing unless a layer is missing. It is not while a machine that just booted
    /// still mounts its state disk.
    fn layers_listed(&self) -> bool;
    /// Opens a flow to `addr` inside the guest (a published port's connection).
    async fn connect(&self, addr: &str, proto: PortProto) -> Result<Stream, ClientError>;
}
