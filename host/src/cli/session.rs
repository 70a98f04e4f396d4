//! An attached session on a hijacked API connection (`run`, `attach`, `exec`, `start -a`):
//! output to our stdout/stderr, our stdin to the process, resizes and signals forwarded.

use hyper::Method;
use tokio::io::AsyncWriteExt;

use super::api::{self, Api, Raw};
use super::signals::Forwarder;
use super::terminal::{RawMode, Resizes};
use crate::Error;

/// How a session behaves.
pub struct Opts {
    pub tty: bool,
    /// Forward our stdin.
    pub stdin: bool,
    /// Where resizes go (`/containers/ID/resize` or `/exec/ID/resize`), for a tty.
    pub resize_path: Option<String>,
    /// Where signals go (`/containers/ID/kill`), without a tty (`--sig-proxy`).
    pub kill_path: Option<String>,
}

/// Runs the session until the output ends.
pub async fn run(api: &Api, io: Raw, opts: Opts) -> Result<(), Error> {
    let (rd, mut wr) = tokio::io::split(io);
    let tty = opts.tty;
    let mut output = tokio::spawn(async move {
        let result = match tty {
            true => {
                let mut rd = rd;
                let mut out = tokio::io::stdout();
                let r = tokio::io::copy(&mut rd, &mut out).await.map(|_| ());
                let _ = out.flush().await;
                r
            }
            false => api::demux(rd, tokio::io::stdout(), tokio::io::stderr()).await,
        };
        if let Err(e) = result {
            tracing::debug!("output ended: {e}");
        }
    });
    let input = opts.stdin.then(|| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut wr).await;
            // Half-close: the daemon sees the end of our input, the output keeps coming.
            let _ = wr.shutdown().await;
        })
    });
    let _raw = (opts.tty && opts.stdin).then(RawMode::enable);
    let mut resizes = Resizes::watch();
    let mut signals = Forwarder::start();
    if let (true, Some(path)) = (opts.tty, &opts.resize_path) {
        resize(api, path).await;
    }
    loop {
        tokio::select! {
            _ = &mut output => break,
            _ = resizes.next(), if opts.tty && opts.resize_path.is_some() => {
                if let Some(path) = &opts.resize_path {
                    resize(api, path).await;
                }
            }
            signal = signals.recv(), if opts.kill_path.is_some() => {
                if let Some(path) = &opts.kill_path {
                    let _ = api.call(Method::POST, &format!("{path}?signal={signal}"), None).await;
                }
            }
        }
    }
    if let Some(input) = input {
        input.abort();
    }
    Ok(())
}

async fn resize(api: &Api, path: &str) {
    let size = super::terminal::size();
    let _ = api
        .call(
            Method::POST,
            &format!("{path}?h={}&w={}", size.rows, size.cols),
            None,
        )
        .await;
}
