//! `docker exec`: processes started inside a running container, and the attached
//! sessions (hijacked connections) of both containers and execs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_mux::Stream;
use berth_protocol::{ExecSpec, GuestMessage, JoinSpec, TtySize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};

use super::create::string;
use super::detach::{next_input, Input};
use super::engine::{Chunk, Container, Engine};
use super::error::ApiError;
use super::logs::{frame, StreamKind};
use super::models::exec::ExecBody;

const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// What `POST /containers/{id}/exec` asked for.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub privileged: bool,
    pub console: Option<TtySize>,
    /// As asked (shown by inspect), and as bytes.
    pub detach_keys: (String, Vec<u8>),
}

impl ExecConfig {
    pub fn from_body(body: &ExecBody) -> Result<ExecConfig, ApiError> {
        super::fields::check_other("", &body.other)?;
        let argv = body.cmd.clone().unwrap_or_default();
        if argv.is_empty() {
            return Err(ApiError::bad_request("No exec command specified"));
        }
        Ok(ExecConfig {
            argv,
            env: body.env.clone().unwrap_or_default(),
            cwd: string(&body.working_dir),
            user: string(&body.user),
            tty: body.tty.unwrap_or(false),
            attach_stdin: body.attach_stdin.unwrap_or(false),
            attach_stdout: body.attach_stdout.unwrap_or(false),
            attach_stderr: body.attach_stderr.unwrap_or(false),
            privileged: body.privileged.unwrap_or(false),
            console: console_size(body.console_size.as_deref()),
            detach_keys: (
                body.detach_keys.clone().unwrap_or_default(),
                super::detach::keys_or_default(body.detach_keys.as_deref())
                    .map_err(ApiError::bad_request)?,
            ),
        })
    }
}

/// `ConsoleSize: [rows, cols]`; zeros mean none.
pub fn console_size(v: Option<&[u64]>) -> Option<TtySize> {
    match v? {
        [h, w] if *h > 0 && *w > 0 => Some(TtySize {
            rows: (*h).min(u16::MAX as u64) as u16,
            cols: (*w).min(u16::MAX as u64) as u16,
        }),
        _ => None,
    }
}

/// Where an exec is in its life.
#[derive(Debug, Clone, Default)]
pub struct ExecState {
    pub running: bool,
    pub started: bool,
    pub exit_code: Option<i32>,
    pub pid: u32,
    pub guest_id: Option<u64>,
}

/// One exec instance.
pub struct ExecInstance {
    pub id: String,
    pub container: Arc<Container>,
    pub config: ExecConfig,
    pub state: Mutex<ExecState>,
}

impl ExecInstance {
    pub fn state(&self) -> ExecState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Docker's `GET /exec/{id}/json`.
    pub fn inspect(&self) -> Value {
        let s = self.state();
        serde_json::json!({
            "ID": self.id,
            "Running": s.running,
            "ExitCode": s.exit_code,
            "ProcessConfig": {
                "tty": self.config.tty,
                "entrypoint": self.config.argv.first(),
                "arguments": self.config.argv.get(1..).unwrap_or_default(),
                "privileged": self.config.privileged,
                "user": self.config.user.clone().unwrap_or_default(),
            },
            "OpenStdin": self.config.attach_stdin,
            "OpenStderr": self.config.attach_stderr,
            "OpenStdout": self.config.attach_stdout,
            "CanRemove": false,
            "ContainerID": self.container.id,
            "DetachKeys": self.config.detach_keys.0,
            "Pid": s.pid,
        })
    }
}

impl Engine {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, c: &Arc<Container>, body: &ExecBody) -> Result<String, ApiError> {
        if !c.state().running {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        if c.state().paused {
            return Err(ApiError::conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        if let Some(named) = body.container.as_deref().filter(|n| !n.is_empty()) {
            let bare = named.trim_start_matches('/');
            if !(c.id.starts_with(bare) || c.name() == bare) {
                return Err(ApiError::bad_request(format!(
                    "the body's Container ({named}) is not the container of the path ({})",
                    c.name()
                )));
            }
        }
        let config = ExecConfig::from_body(body)?;
        let id = super::random_hex(64);
        let instance = Arc::new(ExecInstance {
            id: id.clone(),
            container: c.clone(),
            config,
            state: Mutex::new(ExecState::default()),
        });
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), instance);
        Ok(id)
    }

    pub fn exec_find(&self, id: &str) -> Result<Arc<ExecInstance>, ApiError> {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }

    /// What would keep an exec from starting and is answered before the connection is
    /// hijacked, as Docker answers it (409): it ran already, its container is not running.
    pub fn exec_startable(&self, e: &ExecInstance) -> Result<(), ApiError> {
        if e.state.lock().unwrap_or_else(|p| p.into_inner()).started {
            return Err(ApiError::conflict(format!(
                "exec {} has already run",
                &e.id[..12]
            )));
        }
        if !e.container.state().running {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                e.container.id
            )));
        }
        Ok(())
    }

    /// Starts an exec in the guest; the caller then runs [`run_exec`] on its streams.
    pub async fn exec_start(
        &self,
        e: &ExecInstance,
        tty_override: Option<bool>,
        console_override: Option<TtySize>,
    ) -> Result<super::guest::GuestExec, ApiError> {
        {
            let mut s = e.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.started {
                return Err(ApiError::conflict(format!(
                    "exec {} has already run",
                    &e.id[..12]
                )));
            }
            s.started = true;
        }
        if !e.container.state().running {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                e.container.id
            )));
        }
        let cfg = &e.config;
        let tty = tty_override.unwrap_or(cfg.tty);
        let spec = ExecSpec {
            argv: cfg.argv.clone(),
            env: cfg.env.clone(),
            cwd: cfg.cwd.clone(),
            stdin: cfg.attach_stdin,
            container: None,
            tty: tty.then(|| {
                console_override
                    .or(cfg.console)
                    .unwrap_or(TtySize { rows: 24, cols: 80 })
            }),
            join: Some(JoinSpec {
                id: e.container.id.clone(),
                user: cfg.user.clone(),
                privileged: cfg.privileged,
                builtin: None,
                stopped: None,
            }),
        };
        let mut exec = self.guest.exec(spec).await?;
        match exec.events.recv().await {
            Some(GuestMessage::Started { pid, .. }) => {
                let mut s = e.state.lock().unwrap_or_else(|p| p.into_inner());
                s.running = true;
                s.pid = pid;
                s.guest_id = Some(exec.id);
                Ok(exec)
            }
            Some(GuestMessage::Error { kind, message, .. }) => {
                self.guest.exec_done(exec.id);
                let mut s = e.state.lock().unwrap_or_else(|p| p.into_inner());
                s.exit_code = Some(kind.exit_code());
                Err(ApiError::new(
                    if kind.exit_code() == 125 { 500 } else { 400 },
                    message,
                ))
            }
            other => {
                self.guest.exec_done(exec.id);
                Err(ApiError::internal(format!(
                    "unexpected answer from the guest: {other:?}"
                )))
            }
        }
    }
}

/// Starts the exec on an attached client connection, already upgraded, and serves it
/// ([`run_exec`]). As Docker does, the process starts only after the `101` (and
/// [`super::http::hijack`] calls this once the client has read it): its first output
/// must not arrive together with the response's headers, which a client that reads them
/// through a buffered reader (docker-py, with urllib3) keeps in that buffer and never
/// sees. A failure to start is written into the stream (stderr), and its exit code (126,
/// 127) is the exec's, for the client's inspect.
pub async fn start_and_run<IO>(
    engine: Arc<Engine>,
    e: Arc<ExecInstance>,
    mut io: IO,
    tty: bool,
    console: Option<TtySize>,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    match engine.exec_start(&e, Some(tty), console).await {
        Ok(exec) => run_exec(engine, e, exec, Some(io), tty).await,
        Err(err) => {
            tracing::info!("exec {}: {}", &e.id[..12], err.message);
            {
                let mut s = e.state.lock().unwrap_or_else(|p| p.into_inner());
                s.exit_code.get_or_insert(126);
            }
            let text = format!("{}\r\n", err.message);
            let data = match tty {
                true => text.into_bytes(),
                false => frame(StreamKind::Stderr.frame_byte(), text.as_bytes()),
            };
            let _ = io.write_all(&data).await;
            let _ = io.shutdown().await;
        }
    }
}

/// Serves a started exec on a client connection: output to the client (framed unless
/// `tty`), client input to the process, then the exit code is recorded before the
/// connection closes (the client reads it right after).
pub async fn run_exec<IO>(
    engine: Arc<Engine>,
    e: Arc<ExecInstance>,
    mut exec: super::guest::GuestExec,
    io: Option<IO>,
    tty: bool,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(64);
    let mut pumps = Vec::new();
    let cfg = &e.config;
    for (stream, kind, wanted) in [
        (exec.stdout, StreamKind::Stdout, cfg.attach_stdout),
        (exec.stderr, StreamKind::Stderr, cfg.attach_stderr),
    ] {
        let tx = wanted.then(|| out_tx.clone());
        pumps.push(tokio::spawn(read_into(stream, kind, tty, tx)));
    }
    // `out_tx` stays alive until the exit code is recorded: the connection closes only
    // after that, since the client reads the exit code as soon as it sees the end.
    let (writer, input) = match io {
        Some(io) => {
            let (rd, wr) = tokio::io::split(io);
            let (detached_tx, detached) = tokio::sync::oneshot::channel();
            let writer = tokio::spawn(write_out(out_rx, wr, detached));
            let keys = tty.then(|| super::detach::Watch::new(cfg.detach_keys.1.clone()));
            let input = exec
                .stdin
                .take()
                .map(|to| tokio::spawn(copy_in(rd, to, keys, detached_tx)));
            (Some(writer), input)
        }
        None => {
            // Detached: the output is read and dropped.
            tokio::spawn(discard(out_rx));
            (None, None)
        }
    };
    let code = loop {
        match exec.events.recv().await {
            Some(GuestMessage::Exited { status, .. }) => break status.shell_code(),
            Some(GuestMessage::Error { kind, message, .. }) => {
                tracing::info!("exec {}: {message}", &e.id[..12]);
                break kind.exit_code();
            }
            Some(_) => continue,
            None => break 255,
        }
    };
    engine.guest.exec_done(exec.id);
    let _ = tokio::time::timeout(DRAIN_DEADLINE, async {
        for p in pumps {
            let _ = p.await;
        }
    })
    .await;
    {
        let mut s = e.state.lock().unwrap_or_else(|p| p.into_inner());
        s.running = false;
        s.exit_code = Some(code);
    }
    drop(out_tx);
    if let Some(input) = input {
        input.abort();
    }
    if let Some(writer) = writer {
        let _ = tokio::time::timeout(DRAIN_DEADLINE, writer).await;
    }
}

/// Serves `POST /containers/{id}/attach` on a client connection: live output until the
/// container's process ends; client input to its stdin (closed at the client's EOF when
/// the container was made with `StdinOnce`).
pub async fn run_attach<IO>(
    c: Arc<Container>,
    io: IO,
    mut output: broadcast::Receiver<Chunk>,
    want: (bool, bool, bool),
    (tty, keys): (bool, Vec<u8>),
    (past, stream): (Vec<super::logs::Entry>, bool),
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (want_stdin, want_stdout, want_stderr) = want;
    let (rd, mut wr) = tokio::io::split(io);
    // `logs=1`: what the container printed so far, first.
    for e in past {
        let wanted = match e.stream {
            StreamKind::Stdout => want_stdout,
            StreamKind::Stderr => want_stderr,
        };
        let data = match tty {
            true => e.log.into_bytes(),
            false => frame(e.stream.frame_byte(), e.log.as_bytes()),
        };
        if wanted && wr.write_all(&data).await.is_err() {
            return;
        }
    }
    if !stream {
        let _ = wr.shutdown().await;
        return;
    }
    let (detached_tx, mut detached) = tokio::sync::oneshot::channel();
    let keys = tty.then(|| super::detach::Watch::new(keys));
    let input = want_stdin.then(|| tokio::spawn(attach_input(c.clone(), rd, keys, detached_tx)));
    let mut watching = true;
    loop {
        let chunk = tokio::select! {
            chunk = output.recv() => chunk,
            said = &mut detached, if watching => match said {
                Ok(()) => break,
                Err(_) => {
                    watching = false;
                    continue;
                }
            },
        };
        match chunk {
            Ok(Chunk::Data(kind, bytes)) => {
                let wanted = match kind {
                    StreamKind::Stdout => want_stdout,
                    StreamKind::Stderr => want_stderr,
                };
                if !wanted {
                    continue;
                }
                let data = if tty {
                    bytes.to_vec()
                } else {
                    frame(kind.frame_byte(), &bytes)
                };
                if wr.write_all(&data).await.is_err() {
                    break;
                }
                let _ = wr.flush().await;
            }
            Ok(Chunk::End) | Err(broadcast::error::RecvError::Closed) => break,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("an attached client fell behind; {n} chunks dropped");
            }
        }
    }
    let _ = wr.shutdown().await;
    if let Some(input) = input {
        input.abort();
    }
}

/// Client keystrokes to the container's stdin, once it runs; with `keys` (a terminal),
/// the detach sequence ends the session instead.
async fn attach_input<R: AsyncRead + Unpin>(
    c: Arc<Container>,
    mut rd: R,
    mut keys: Option<super::detach::Watch>,
    detached: tokio::sync::oneshot::Sender<()>,
) {
    let mut phase = c.phase.subscribe();
    if phase.wait_for(|p| p.running || p.removed).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    while let Some(input) = next_input(&mut rd, &mut buf, &mut keys).await {
        let (pass, detach) = match input {
            Input::Pass(b) => (b, false),
            Input::Detach(b) => (b, true),
        };
        let mut stdin = c.stdin.lock().await;
        match stdin.as_mut() {
            Some(s) => {
                if s.write_all(&pass).await.is_err() {
                    break;
                }
            }
            None => return,
        }
        if detach {
            let _ = detached.send(());
            return;
        }
    }
    if c.record().spec.stdin_once {
        if let Some(mut s) = c.stdin.lock().await.take() {
            let _ = s.shutdown().await;
        }
    }
}

/// Frames what `from` says for the client; with no `tx` (a stream the client did not
/// attach) it is read and dropped.
async fn read_into(
    mut from: Stream,
    kind: StreamKind,
    tty: bool,
    tx: Option<mpsc::Sender<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) if tx.is_none() => {}
            Ok(n) => {
                let Some(tx) = &tx else { break };
                let data = if tty {
                    buf[..n].to_vec()
                } else {
                    frame(kind.frame_byte(), &buf[..n])
                };
                if tx.send(data).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// The output to the client, until it ends or the client detaches (then the rest is
/// read and dropped, so the pumps never block).
async fn write_out<W: AsyncWrite + Unpin>(
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut wr: W,
    mut detached: tokio::sync::oneshot::Receiver<()>,
) {
    let (mut open, mut watching) = (true, true);
    loop {
        let data = tokio::select! {
            data = rx.recv() => data,
            said = &mut detached, if watching => {
                watching = false;
                if said.is_ok() {
                    open = false;
                    let _ = wr.shutdown().await;
                }
                continue;
            }
        };
        let Some(data) = data else { break };
        if open && (wr.write_all(&data).await.is_err() || wr.flush().await.is_err()) {
            open = false;
        }
    }
    if open {
        let _ = wr.shutdown().await;
    }
}

async fn discard(mut rx: mpsc::Receiver<Vec<u8>>) {
    while rx.recv().await.is_some() {}
}

/// The client's input to the process. With `keys` (a terminal), the detach sequence
/// ends the client's session instead: the process keeps running, its stdin open.
async fn copy_in<R: AsyncRead + Unpin>(
    mut rd: R,
    mut to: Stream,
    mut keys: Option<super::detach::Watch>,
    detached: tokio::sync::oneshot::Sender<()>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Some(input) = next_input(&mut rd, &mut buf, &mut keys).await {
        let (pass, detach) = match input {
            Input::Pass(b) => (b, false),
            Input::Detach(b) => (b, true),
        };
        if to.write_all(&pass).await.is_err() {
            break;
        }
        if detach {
            let _ = detached.send(());
            drop(rd);
            // Held open, as Docker's: the process's terminal input does not end.
            return std::future::pending::<()>().await;
        }
    }
    let _ = to.shutdown().await;
}
