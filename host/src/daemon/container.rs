//! One container's in-memory handle ([`Container`]) around its persisted [`Record`]: its
//! log writer, output and phase channels, the running process's exec id and stdin, and
//! what the restart policy keeps between runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use berth_mux::Stream;
use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use super::health::{Check, Health, Probe};
use super::logs::{Entry, LogWriter, StreamKind};
use super::restart::Backoff;
use super::state::{Record, State, Store};

/// A piece of live output, for attached clients.
#[derive(Debug, Clone)]
pub enum Chunk {
    Data(StreamKind, Bytes),
    /// The process ended and all its output was sent.
    End,
}

/// Where a container is in its life, for waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phase {
    pub running: bool,
    /// How many times it has exited.
    pub exits: u64,
    pub removed: bool,
}

/// One container.
pub struct Container {
    pub id: String,
    pub(super) record: Mutex<Record>,
    /// The log writer; held while reading the log for `logs -f` so no entry is missed.
    pub log: tokio::sync::Mutex<LogWriter>,
    pub log_tx: broadcast::Sender<Entry>,
    pub out_tx: broadcast::Sender<Chunk>,
    pub phase: watch::Sender<Phase>,
    /// The running process's guest exec id.
    pub(super) exec_id: Mutex<Option<u64>>,
    pub stdin: tokio::sync::Mutex<Option<Stream>>,
    /// Serializes start/stop/kill/remove of this container.
    pub(super) ops: tokio::sync::Mutex<()>,
    /// The tasks serving its published ports while it runs.
    pub(super) ports: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// When its current run began, for the restart back-off.
    pub(super) started_at: Mutex<Option<tokio::time::Instant>>,
    pub(super) backoff: Mutex<Backoff>,
    /// Bumped by every user start, stop, kill or remove: a policy restart scheduled
    /// before one of those is dropped.
    pub(super) generation: std::sync::atomic::AtomicU64,
}

impl Container {
    pub(super) fn new(record: Record, store: &Store) -> Arc<Container> {
        let (log_tx, _) = broadcast::channel(1024);
        let (out_tx, _) = broadcast::channel(1024);
        let (phase, _) = watch::channel(Phase::default());
        Arc::new(Container {
            id: record.id.clone(),
            log: tokio::sync::Mutex::new(LogWriter::new(store.log_path(&record.id))),
            record: Mutex::new(record),
            log_tx,
            out_tx,
            phase,
            exec_id: Mutex::new(None),
            stdin: tokio::sync::Mutex::new(None),
            ops: tokio::sync::Mutex::new(()),
            ports: Mutex::new(Vec::new()),
            started_at: Mutex::new(None),
            backoff: Mutex::new(Backoff::default()),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A copy of the record.
    pub fn record(&self) -> Record {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn name(&self) -> String {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .name
            .clone()
    }

    pub fn state(&self) -> State {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state
            .clone()
    }

    pub(super) fn update(&self, store: &Store, change: impl FnOnce(&mut Record)) {
        let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut r);
        if let Err(e) = store.save(&r) {
            tracing::error!("cannot save container {}: {e}", r.id);
        }
    }

    pub fn exec_id(&self) -> Option<u64> {
        *self.exec_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn short(&self) -> &str {
        &self.id[..12]
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A user action: any policy restart scheduled before it is dropped.
    pub(super) fn user_action(&self) -> u64 {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    pub(super) fn set_health(&self, store: &Store, health: Option<Health>) {
        self.update(store, |r| r.state.health = health);
    }

    /// Records a healthcheck result; the new status when it changed.
    pub(super) fn record_probe(
        &self,
        store: &Store,
        probe: Probe,
        check: &Check,
        in_start_period: bool,
    ) -> Option<String> {
        let mut changed = None;
        self.update(store, |r| {
            let h = r.state.health.get_or_insert_with(Health::starting);
            changed = h.record(probe, check, in_start_period);
        });
        changed
    }

    /// Docker's event attributes of a container: its labels, image and name.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let r = self.record();
        let mut a = r.config.labels.clone().unwrap_or_default();
        a.insert("image".into(), r.image.clone());
        a.insert("name".into(), r.name.clone());
        a
    }

    pub(super) fn update_record(&self, store: &Store, change: impl FnOnce(&mut Record)) {
        self.update(store, change);
    }

    pub(super) fn update_spec(
        &self,
        store: &Store,
        change: impl FnOnce(&mut super::state::RunSpec),
    ) {
        self.update(store, |r| change(&mut r.spec));
    }

    /// Renames the container (the caller checked the name is free).
    pub(super) fn set_name(&self, store: &Store, name: &str) {
        self.update(store, |r| r.name = name.to_string());
    }
}
