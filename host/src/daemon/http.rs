//! HTTP plumbing of the API server (hyper 1): bodies, JSON and error responses,
//! streamed responses, query strings and connection hijacking.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::mpsc;

use super::error::ApiError;

pub type Body = BoxBody<Bytes, Infallible>;
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// The largest JSON request body the API reads.
const MAX_JSON_BODY: usize = 4 << 20;

pub fn full(status: u16, content_type: &str, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(bytes.into()).boxed());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if !content_type.is_empty() {
        if let Ok(v) = content_type.parse() {
            resp.headers_mut().insert("Content-Type", v);
        }
    }
    resp
}

pub fn json(status: u16, value: &Value) -> Response<Body> {
    typed(status, value)
}

/// A typed model as a JSON response.
pub fn typed<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Response<Body> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    full(status, "application/json", bytes)
}

pub fn no_content() -> Response<Body> {
    full(204, "", Bytes::new())
}

pub fn error(e: &ApiError) -> Response<Body> {
    if e.status == 304 {
        return full(304, "", Bytes::new());
    }
    json(e.status, &serde_json::json!({ "message": e.message }))
}

/// A response whose body is whatever is sent on the returned channel, until it is dropped.
/// The headers go out at once.
pub fn streaming(content_type: &str) -> (mpsc::Sender<Bytes>, Response<Body>) {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert("Content-Type", v);
    }
    (tx, resp)
}

/// The query string as a map (the last value of a repeated key wins).
pub fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Docker's boolean query values: `1`, `true`, `True`.
pub fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    flag_or(q, key, false)
}

/// A boolean query parameter as Docker reads one (`BoolValue`): anything but ``, `0`,
/// `no`, `false` and `none` (any case) is true, so docker-py's `False` is false; absent
/// is `default`.
pub fn flag_or(q: &HashMap<String, String>, key: &str, default: bool) -> bool {
    match q.get(key) {
        None => default,
        Some(v) => !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        ),
    }
}

/// A request body of at most the JSON limit.
pub async fn body_bytes(body: Incoming) -> Result<Bytes, ApiError> {
    Ok(http_body_util::Limited::new(body, MAX_JSON_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
        .to_bytes())
}

/// A JSON request body as a typed model (see [`super::models::parse`]).
pub async fn typed_body<T: serde::de::DeserializeOwned + Default>(
    body: Incoming,
) -> Result<T, ApiError> {
    super::models::parse(&body_bytes(body).await?)
}

/// The client connection's socket, put in each request's extensions by the accept loop
/// (see [`wait_until_read`]).
#[derive(Debug, Clone, Copy)]
pub struct PeerFd(pub std::os::fd::RawFd);

/// How long [`wait_until_read`] waits for the client to read what was written to it.
const READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits until the client has read everything written to its connection (the `101`'s
/// headers), up to [`READ_DEADLINE`]. A client that reads the headers through a buffered
/// reader (docker-py, through urllib3) keeps whatever arrived with them in that buffer
/// and then reads the raw socket: the first output of a fast exec, sent right behind the
/// `101`, was lost that way. Where the kernel cannot tell, it does not wait.
async fn wait_until_read(peer: Option<PeerFd>) {
    let Some(PeerFd(fd)) = peer else { return };
    let start = std::time::Instant::now();
    while crate::sys::unread_by_peer(fd) == Some(true) && start.elapsed() < READ_DEADLINE {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// A request's connection upgrade, with the client's socket to watch ([`upgrade`]).
pub struct Upgrade {
    on_upgrade: hyper::upgrade::OnUpgrade,
    peer: Option<PeerFd>,
}

/// The upgrade of `req`'s connection, for [`hijack`]; taken before its body is read.
pub fn upgrade<B>(req: &mut hyper::Request<B>) -> Upgrade {
    Upgrade {
        peer: req.extensions().get::<PeerFd>().copied(),
        on_upgrade: hyper::upgrade::on(req),
    }
}

/// Answers `101 UPGRADED` and runs `serve` on the raw connection once hyper hands it
/// over and the client has read the answer ([`wait_until_read`]), as Docker's attach and
/// exec start do: nothing `serve` writes arrives together with the headers.
pub fn hijack<F, Fut>(
    Upgrade { on_upgrade, peer }: Upgrade,
    content_type: &str,
    serve: F,
) -> Response<Body>
where
    F: FnOnce(Upgraded) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                wait_until_read(peer).await;
                serve(TokioIo::new(upgraded)).await
            }
            Err(e) => tracing::warn!("connection upgrade failed: {e}"),
        }
    });
    let mut resp = full(101, content_type, Bytes::new());
    let h = resp.headers_mut();
    h.insert(
        "Connection",
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    h.insert("Upgrade", hyper::header::HeaderValue::from_static("tcp"));
    resp
}

/// Docker's stream media types.
pub fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Strips Docker's `/v1.43` version prefix from a path.
pub fn strip_version(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(slash) = rest.find('/') {
            let version = &rest[..slash];
            if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return &rest[slash..];
            }
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_parameters_read_as_dockers() {
        let q: HashMap<String, String> = [("a", "False"), ("b", "t"), ("c", "0"), ("d", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(!flag(&q, "a"), "docker-py sends False");
        assert!(flag(&q, "b"));
        assert!(!flag_or(&q, "c", true));
        assert!(!flag_or(&q, "d", true));
        assert!(flag_or(&q, "absent", true) && !flag(&q, "absent"));
    }

    #[test]
    fn version_prefixes_are_stripped() {
        assert_eq!(strip_version("/v1.43/containers/json"), "/containers/json");
        assert_eq!(strip_version("/_ping"), "/_ping");
        assert_eq!(strip_version("/volumes"), "/volumes");
    }
}
