//! Registry and archive endpoints: `POST /images/create` (pull, or import with
//! `fromSrc=-`), `POST /images/{name}/push`, `GET /images/get` and `/images/{name}/get`
//! (save), `GET /images/{name}/history`, `POST /images/prune`, `GET /distribution/{name}/json`
//! and `POST /auth`. Pulls and pushes answer with Docker's JSON progress stream; an error
//! found before the first byte is an HTTP status, after it an `errorDetail` message.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::engine::Engine;
use super::error::ApiError;
use super::http::{self, Body};
use crate::image::registry::{
    self, Credentials, Event, Platform, Progress, RegistryError, Settings,
};
use crate::image::{manage, Reference};

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        ApiError::new(e.status(), crate::error::chain(&e))
    }
}

/// `$BERTH_HOME`: the store lives at `<home>/images`.
pub(super) fn settings(engine: &Engine) -> Result<Settings, ApiError> {
    let home = engine
        .images
        .root()
        .parent()
        .unwrap_or(engine.images.root());
    Ok(Settings::load(home)?)
}

/// The credentials of `X-Registry-Auth`; `None` when absent or empty (the daemon then
/// uses the docker CLI config of the user it runs as).
fn credentials(req: &Request<Incoming>) -> Result<Option<Credentials>, ApiError> {
    match req.headers().get("X-Registry-Auth") {
        None => Ok(None),
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| ApiError::bad_request("X-Registry-Auth is not ASCII"))?;
            Ok(Credentials::from_header(text)?)
        }
    }
}

/// Every value of a repeated query key (`names=a&names=b`, `changes=...`).
pub(super) fn query_all(req: &Request<Incoming>, key: &str) -> Vec<String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Sends each report as Docker's JSON lines on an unbounded channel (reports come from
/// synchronous code), forwarded to the response body.
pub(super) struct Stream {
    tx: mpsc::UnboundedSender<Bytes>,
}

impl Stream {
    pub(super) fn new(content_type: &str) -> (Stream, Response<Body>) {
        let (body_tx, resp) = http::streaming(content_type);
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        tokio::spawn(async move {
            // Ends as soon as the client goes away, so `closed` tells the producer.
            loop {
                tokio::select! {
                    b = rx.recv() => match b {
                        Some(b) => {
                            if body_tx.send(b).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    _ = body_tx.closed() => break,
                }
            }
        });
        (Stream { tx }, resp)
    }

    pub(super) fn send(&self, v: &Value) {
        let mut line = serde_json::to_vec(v).unwrap_or_default();
        line.extend_from_slice(b"\r\n");
        let _ = self.tx.send(Bytes::from(line));
    }

    /// Whether the client stopped reading (it went away).
    pub(super) fn closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub(super) fn error(&self, message: &str) {
        self.send(&json!({"errorDetail": {"message": message}, "error": message}));
    }
}

impl Progress for Stream {
    fn report(&self, event: Event) {
        for msg in event.docker_json() {
            self.send(&msg);
        }
    }
}

/// `POST /images/create`: `fromImage` pulls, `fromSrc=-` imports the body.
pub async fn create(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let platform = match q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Platform::parse(p)?,
        None => Platform::default(),
    };
    if let Some(src) = q.get("fromSrc") {
        return import(engine, req, q, src, &platform).await;
    }
    let Some(from) = q.get("fromImage").filter(|f| !f.is_empty()) else {
        return Err(ApiError::bad_request("fromImage or fromSrc is required"));
    };
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.clone(),
    };
    let reference = Reference::parse(&name)?;
    let opts = registry::PullOptions {
        platform,
        credentials: credentials(&req)?,
    };
    let settings = settings(&engine)?;
    let resolved = registry::resolve(&settings, &reference, &opts).await?;
    let (stream, resp) = Stream::new("application/json");
    tokio::spawn(async move {
        match resolved.fetch(&engine.images, &settings, &stream).await {
            Ok(_) => engine.events.image(&name, &name, "pull"),
            Err(e) => stream.error(&crate::error::chain(&e)),
        }
    });
    Ok(resp)
}

/// `POST /images/create?fromSrc=-`: the body is a root file system tarball.
async fn import(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    q: &HashMap<String, String>,
    src: &str,
    platform: &Platform,
) -> Result<Response<Body>, ApiError> {
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "fromSrc={src}: importing from a URL is not supported; send the tarball as the \
             body with fromSrc=-"
        )));
    }
    if !platform.runnable() {
        return Err(ApiError::bad_request(format!(
            "platform {platform}: berth's machines run linux/amd64 images only"
        )));
    }
    let tag = match (q.get("repo").filter(|r| !r.is_empty()), q.get("tag")) {
        (None, _) => None,
        (Some(r), Some(t)) if !t.is_empty() => Some(Reference::parse(&format!("{r}:{t}"))?),
        (Some(r), _) => Some(Reference::parse(r)?),
    };
    let opts = crate::image::import::ImportOptions {
        changes: query_all(&req, "changes"),
        message: q.get("message").cloned().unwrap_or_default(),
        tag,
    };
    let spool = super::images::spool_body(&engine, req.into_body()).await?;
    let store = engine.images.clone();
    let id = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(spool.path())?;
        let id = crate::image::import::import(&store, std::io::BufReader::new(file), &opts);
        drop(spool);
        Ok::<_, std::io::Error>(id)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??
    .map_err(|e| ApiError::bad_request(crate::error::chain(&e)))?;
    engine
        .events
        .image(&id.to_string(), &id.to_string(), "import");
    Ok(http::json(200, &json!({"status": id.to_string()})))
}

/// `POST /images/{name}/push?tag=`.
pub async fn push(
    engine: Arc<Engine>,
    req: Request<Incoming>,
    name: &str,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let reference = Reference::parse(&name)?;
    if engine.images.index().read()?.find_tag(&reference).is_none() {
        return Err(ApiError::not_found(format!(
            "An image does not exist locally with the tag: {}",
            reference.familiar_repository()
        )));
    }
    let creds = credentials(&req)?;
    let settings = settings(&engine)?;
    let (stream, resp) = Stream::new("application/json");
    tokio::spawn(async move {
        let pushed = registry::push(&engine.images, &settings, &name, creds, &stream).await;
        if let Err(e) = pushed {
            stream.error(&crate::error::chain(&e));
        }
    });
    Ok(resp)
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`: a `docker save` tar, streamed.
pub fn save(engine: &Engine, names: Vec<String>) -> Result<Response<Body>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request("names is required"));
    }
    for n in &names {
        if engine.images.find(n)?.is_none() {
            return Err(ApiError::not_found(format!("No such image: {n}")));
        }
    }
    let (tx, resp) = http::streaming("application/x-tar");
    let store = engine.images.clone();
    tokio::task::spawn_blocking(move || {
        let out = ChannelWriter { tx };
        if let Err(e) = crate::image::save::save(
            &store,
            &names,
            std::io::BufWriter::with_capacity(1 << 20, out),
        ) {
            // The status is sent already: cutting the stream short is all that is left.
            tracing::warn!("save: {}", crate::error::chain(&e));
        }
    });
    Ok(resp)
}

/// The names of `GET /images/get`.
pub fn save_names(req: &Request<Incoming>) -> Vec<String> {
    query_all(req, "names")
}

/// A blocking writer into a streamed response.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /images/{name}/history`.
pub fn history(engine: &Engine, name: &str) -> Result<Response<Body>, ApiError> {
    let image = engine
        .images
        .find(name)?
        .ok_or_else(|| ApiError::not_found(format!("No such image: {name}")))?;
    let steps = crate::image::history::history(&engine.images, &image)?;
    Ok(http::json(
        200,
        &serde_json::to_value(steps).unwrap_or_default(),
    ))
}

/// `POST /images/prune?filters=`: `dangling` and `until`; any other filter is refused.
pub fn prune(engine: &Engine, q: &HashMap<String, String>) -> Result<Response<Body>, ApiError> {
    let filters: HashMap<String, Value> = match q.get("filters").filter(|f| !f.is_empty()) {
        Some(f) => serde_json::from_str(f)
            .map_err(|e| ApiError::bad_request(format!("invalid filters: {e}")))?,
        None => HashMap::new(),
    };
    let mut filter = manage::PruneFilter::default();
    for (key, value) in &filters {
        let values: Vec<String> = match value {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let first = values.first().cloned().unwrap_or_default();
        match key.as_str() {
            "dangling" => filter.all = matches!(first.as_str(), "false" | "0"),
            "until" => {
                filter.until = Some(
                    crate::image::time::until(&first, std::time::SystemTime::now())
                        .map_err(ApiError::bad_request)?,
                )
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter {other:?}: image prune takes dangling and until"
                )))
            }
        }
    }
    let in_use = super::state::images_in_use(engine.machines_dir());
    let pruned = manage::prune(&engine.images, &filter, &in_use)?;
    let deleted: Vec<Value> = pruned
        .removed
        .iter()
        .map(|r| match r {
            manage::Removal::Untagged(t) => json!({"Untagged": t}),
            manage::Removal::Deleted(id) => json!({"Deleted": id}),
        })
        .collect();
    Ok(http::json(
        200,
        &json!({"ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": pruned.reclaimed}),
    ))
}

/// `GET /distribution/{name}/json`.
pub async fn distribution(
    engine: &Engine,
    req: &Request<Incoming>,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let reference = Reference::parse(name)?;
    let settings = settings(engine)?;
    let v = registry::distribution(&settings, &reference, credentials(req)?).await?;
    Ok(http::json(200, &v))
}

/// `POST /auth`: checks the credentials; the client keeps them.
pub async fn auth(engine: &Engine, body: Incoming) -> Result<Response<Body>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Auth {
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
        #[serde(default, rename = "serveraddress")]
        server: String,
        /// Logins by token are refused below rather than ignored.
        #[serde(default, rename = "identitytoken")]
        identity_token: String,
        #[serde(default, rename = "registrytoken")]
        registry_token: String,
        /// `auth` (base64 user:password), as some clients send instead of the two fields.
        #[serde(default)]
        auth: String,
    }
    let bytes = body
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
        .to_bytes();
    let auth: Auth = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if !auth.identity_token.is_empty() || !auth.registry_token.is_empty() {
        return Err(ApiError::bad_request(
            "POST /auth: logging in with identitytoken or registrytoken is not supported: \
             send username and password",
        ));
    }
    let (username, password) = match (auth.username.is_empty(), auth.auth.is_empty()) {
        (true, false) => match Credentials::from_header_auth(&auth.auth)? {
            Credentials::Basic { username, password } => (username, password),
            _ => {
                return Err(ApiError::bad_request(
                    "POST /auth: auth is not user:password",
                ))
            }
        },
        _ => (auth.username, auth.password),
    };
    let domain = registry::server_domain(&auth.server);
    let settings = settings(engine)?;
    registry::login(&settings, &domain, &username, &password).await?;
    Ok(http::json(
        200,
        &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}
