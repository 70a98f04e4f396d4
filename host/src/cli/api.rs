//! The CLI's client of the daemon's API (the same Docker Engine API the docker CLI
//! uses), over the machine's unix socket. One connection per request.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Error;

pub type ReqBody = BoxBody<Bytes, std::io::Error>;
pub type Raw = TokioIo<hyper::upgrade::Upgraded>;

/// A client of one machine's daemon.
#[derive(Debug, Clone)]
pub struct Api {
    pub socket: PathBuf,
}

impl Api {
    pub fn new(socket: &Path) -> Api {
        Api {
            socket: socket.to_path_buf(),
        }
    }

    async fn sender(&self) -> Result<hyper::client::conn::http1::SendRequest<ReqBody>, Error> {
        let stream = connect(&self.socket).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::Daemon(format!("talking to {}: {e}", self.socket.display())))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    fn build(method: Method, path: &str, body: ReqBody) -> Result<Request<ReqBody>, Error> {
        Request::builder()
            .method(method)
            .uri(format!("/v{}{path}", crate::machine::API_VERSION))
            .header("Host", "berth")
            .header("Content-Type", "application/json")
            .header("User-Agent", concat!("berth/", env!("CARGO_PKG_VERSION")))
            .body(body)
            .map_err(|e| Error::Usage(format!("bad request {path}: {e}")))
    }

    /// Sends a request and returns the response, whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
    ) -> Result<Response<Incoming>, Error> {
        let mut sender = self.sender().await?;
        let req = Self::build(method, path, body)?;
        sender
            .send_request(req)
            .await
            .map_err(|e| Error::Daemon(format!("the daemon dropped the request {path}: {e}")))
    }

    /// A request with a JSON body (or none); a 2xx answer's JSON body (`Null` when empty),
    /// any other status as `Error::Api`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let resp = self.send(method, path, json_body(body)).await?;
        let status = resp.status();
        let bytes = collect(resp).await?;
        check(status, &bytes)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Daemon(format!("bad answer to {path}: {e}")))
    }

    /// Like `call`, keeping the status (for 304 answers).
    pub async fn call_status(&self, method: Method, path: &str) -> Result<StatusCode, Error> {
        let resp = self.send(method, path, json_body(None)).await?;
        let status = resp.status();
        let bytes = collect(resp).await?;
        check(status, &bytes)?;
        Ok(status)
    }

    /// A streamed answer (logs, wait, stats): the response after its status was checked.
    pub async fn stream(&self, method: Method, path: &str) -> Result<Response<Incoming>, Error> {
        let resp = self.send(method, path, json_body(None)).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let bytes = collect(resp).await?;
            check(status, &bytes)?;
            return Err(Error::Daemon(format!("{path}: unexpected status {status}")));
        }
        Ok(resp)
    }

    /// Hijacks a connection (attach, exec start): `101`, then raw bytes both ways.
    pub async fn hijack(&self, path: &str, body: Option<&Value>) -> Result<Raw, Error> {
        let mut sender = self.sender().await?;
        let mut req = Self::build(Method::POST, path, json_body(body))?;
        let h = req.headers_mut();
        h.insert(
            "Connection",
            hyper::header::HeaderValue::from_static("Upgrade"),
        );
        h.insert("Upgrade", hyper::header::HeaderValue::from_static("tcp"));
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Error::Daemon(format!("the daemon dropped the request {path}: {e}")))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = resp.status();
            let bytes = collect(resp).await?;
            check(status, &bytes)?;
            return Err(Error::Daemon(format!(
                "{path}: the daemon did not switch protocols ({status})"
            )));
        }
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|e| Error::Daemon(format!("{path}: upgrade failed: {e}")))?;
        Ok(TokioIo::new(upgraded))
    }
}

#[cfg(unix)]
async fn connect(socket: &Path) -> Result<tokio::net::UnixStream, Error> {
    tokio::net::UnixStream::connect(socket).await.map_err(|e| {
        Error::Daemon(format!(
            "cannot connect to the berth daemon at unix://{}: {e} (is the machine running? `berth machine start`)",
            socket.display()
        ))
    })
}

#[cfg(not(unix))]
async fn connect(socket: &Path) -> Result<tokio::net::TcpStream, Error> {
    Err(Error::Daemon(format!(
        "the berth daemon ({}) needs a unix-socket host for now",
        socket.display()
    )))
}

pub fn json_body(body: Option<&Value>) -> ReqBody {
    let bytes = body
        .map(|v| Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
        .unwrap_or_default();
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

pub async fn collect(resp: Response<Incoming>) -> Result<Bytes, Error> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(|e| Error::Daemon(format!("reading the daemon's answer: {e}")))?
        .to_bytes())
}

fn check(status: StatusCode, bytes: &[u8]) -> Result<(), Error> {
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        return Ok(());
    }
    let message = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).trim().to_string());
    Err(Error::Api {
        status: status.as_u16(),
        message,
    })
}

/// Percent-encodes a query value.
pub fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Copies Docker's multiplexed stream (8-byte headers) to stdout and stderr until EOF.
pub async fn demux<R, O, E>(mut from: R, mut out: O, mut err: E) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut header = [0u8; 8];
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let mut left = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        while left > 0 {
            let want = left.min(buf.len());
            from.read_exact(&mut buf[..want]).await?;
            match header[0] {
                2 => {
                    err.write_all(&buf[..want]).await?;
                    err.flush().await?;
                }
                _ => {
                    out.write_all(&buf[..want]).await?;
                    out.flush().await?;
                }
            }
            left -= want;
        }
    }
    Ok(())
}

/// Copies a response body to stdout/stderr, demultiplexing unless `raw`.
pub async fn print_body(resp: Response<Incoming>, raw: bool) -> Result<(), Error> {
    let mut reader = BodyReader {
        body: resp.into_body(),
        chunk: Bytes::new(),
    };
    let (mut out, err) = (tokio::io::stdout(), tokio::io::stderr());
    let result = match raw {
        true => tokio::io::copy(&mut reader, &mut out).await.map(|_| ()),
        false => demux(reader, out, err).await,
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// An `AsyncRead` over a response body.
struct BodyReader {
    body: Incoming,
    chunk: Bytes,
}

impl AsyncRead for BodyReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use hyper::body::Body as _;
        use std::task::Poll;
        loop {
            if !self.chunk.is_empty() {
                let n = self.chunk.len().min(buf.remaining());
                let part = self.chunk.split_to(n);
                buf.put_slice(&part);
                return Poll::Ready(Ok(()));
            }
            match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.chunk = data;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(std::io::Error::other(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// `{"until":["24h"],"label":["a=b"]}` from `--filter until=24h --filter label=a=b`.
pub fn filters_query(filters: &[String]) -> Result<String, Error> {
    let mut map = serde_json::Map::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--filter {f:?}: expected KEY=VALUE")))?;
        if let Some(list) = map
            .entry(k.to_string())
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
        {
            list.push(Value::String(v.to_string()));
        }
    }
    Ok(match map.is_empty() {
        true => String::new(),
        false => format!("?filters={}", enc(&Value::Object(map).to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_dockers_query() {
        assert_eq!(filters_query(&[]).unwrap(), "");
        let q = filters_query(&["until=24h".into(), "label=a=b".into()]).unwrap();
        assert!(
            q.starts_with("?filters=") && q.contains("until") && q.contains("a%3Db"),
            "{q}"
        );
        assert!(filters_query(&["nokey".into()]).is_err());
    }

    #[tokio::test]
    async fn demux_splits_streams() {
        let mut input = crate::daemon::frame(1, b"out\n");
        input.extend(crate::daemon::frame(2, b"err\n"));
        input.extend(crate::daemon::frame(1, b"more"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        demux(&input[..], &mut out, &mut err).await.unwrap();
        assert_eq!(out, b"out\nmore");
        assert_eq!(err, b"err\n");
    }
}
