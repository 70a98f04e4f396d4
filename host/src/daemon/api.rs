//! The Docker Engine API routes (a subset of 1.43) and berth's own under `/berth/`.
//! Handlers parse, delegate to the [`Engine`] and map its errors; no state lives here.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_protocol::{ContainerOp, ContainerResult};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{json, Value};

use super::attach_net::{ConnectBody, DisconnectBody};
use super::engine::{Container, Engine};
use super::error::ApiError;
use super::http::{self, flag, Body};
use super::logs::{self, Filter};
use super::models::exec::{ExecBody, ExecStartBody};
use super::models::CreateBody;
use super::views;

pub use crate::machine::{API_VERSION, MIN_API_VERSION};

/// What the daemon's main loop is told by the API.
pub struct Control {
    pub engine: Arc<Engine>,
    /// Set by `POST /berth/machine/stop` with the stop timeout in seconds.
    pub stop: tokio::sync::watch::Sender<Option<u64>>,
}

pub async fn handle(
    ctl: Arc<Control>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let method = req.method().clone();
    let path = http::strip_version(req.uri().path()).to_string();
    tracing::debug!("{method} {}", req.uri());
    let mut resp = match route(&ctl, req, &method, &path).await {
        Ok(r) => r,
        Err(e) => {
            if e.status >= 500 {
                tracing::warn!("{method} {path}: {}", e.message);
            }
            http::error(&e)
        }
    };
    let h = resp.headers_mut();
    h.insert(
        "Api-Version",
        hyper::header::HeaderValue::from_static(API_VERSION),
    );
    h.insert("Ostype", hyper::header::HeaderValue::from_static("linux"));
    h.insert("Server", hyper::header::HeaderValue::from_static("berthd"));
    Ok(resp)
}

async fn route(
    ctl: &Arc<Control>,
    mut req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> Result<Response<Body>, ApiError> {
    let engine = &ctl.engine;
    let q = http::query(&req);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = *method == Method::GET || *method == Method::HEAD;
    let post = *method == Method::POST;
    let delete = *method == Method::DELETE;
    match parts.as_slice() {
        ["_ping"] if get => Ok(ping()),
        ["version"] if get => Ok(http::json(200, &version(engine))),
        ["info"] if get => Ok(http::json(200, &info(engine))),
        ["containers", "json"] if get => {
            let all_containers = engine.all();
            let filter = views::ContainerFilter::parse(
                q.get("filters").map(String::as_str),
                &all_containers,
                &engine.images,
            )?;
            let all = flag(&q, "all") || filter.selects_stopped();
            let now = SystemTime::now();
            // `size=1` (`docker ps -s`): each container's writable layer, from the guest.
            let usage = match flag(&q, "size") {
                true => engine.guest_usage().await,
                false => None,
            };
            let mut list: Vec<Value> = all_containers
                .iter()
                .rev()
                .filter(|c| all || c.state().running)
                .filter(|c| filter.matches(&c.record()))
                .map(|c| {
                    let mut entry = views::list_entry(c, now);
                    if let Some(u) = &usage {
                        engine.add_sizes(&mut entry, &c.record(), u);
                    }
                    entry
                })
                .collect();
            if let Some(limit) = q.get("limit").and_then(|l| l.parse::<usize>().ok()) {
                if limit > 0 {
                    list.truncate(limit);
                }
            }
            Ok(http::json(200, &Value::Array(list)))
        }
        ["containers", "create"] if post => {
            let body: CreateBody = http::typed_body(req.into_body()).await?;
            let id = engine.create(&body, q.get("name").map(String::as_str))?;
            Ok(http::json(201, &json!({"Id": id, "Warnings": []})))
        }
        ["containers", name, "json"] if get => {
            let c = engine.find(name)?;
            let mut view = views::inspect(&c, &engine.store.log_path(&c.id));
            // `size=1` (`docker inspect -s`).
            if flag(&q, "size") {
                if let Some(u) = engine.guest_usage().await {
                    engine.add_sizes(&mut view, &c.record(), &u);
                }
            }
            Ok(http::json(200, &view))
        }
        ["containers", name, "archive"] if *method == Method::HEAD => {
            let c = engine.find(name)?;
            let stat = engine
                .archive_stat(&c, q.get("path").map_or("", String::as_str))
                .await?;
            let mut resp = full_ok();
            let header = super::archive::ContainerPathStat::from_guest(&stat);
            let value = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                serde_json::to_vec(&header).unwrap_or_default(),
            );
            if let Ok(v) = value.parse() {
                resp.headers_mut().insert(super::archive::STAT_HEADER, v);
            }
            Ok(resp)
        }
        ["containers", name, "archive"] if get => {
            let c = engine.find(name)?;
            engine
                .archive_get(&c, q.get("path").map_or("", String::as_str))
                .await
        }
        ["containers", name, "archive"] if *method == Method::PUT => {
            let c = engine.find(name)?;
            let path = q.get("path").cloned().unwrap_or_default();
            let no_overwrite = flag(&q, "noOverwriteDirNonDir");
            let copy_owners = flag(&q, "copyUIDGID");
            engine
                .archive_put(&c, &path, no_overwrite, copy_owners, req.into_body())
                .await?;
            Ok(full_ok())
        }
        ["containers", name, "export"] if get => {
            let c = engine.find(name)?;
            engine.export(&c).await
        }
        ["containers", name, "changes"] if get => {
            let c = engine.find(name)?;
            Ok(http::typed(200, &engine.changes(&c).await?))
        }
        ["commit"] if post => {
            let c = engine.find(q.get("container").map_or("", String::as_str))?;
            let text = |k: &str| q.get(k).cloned().unwrap_or_default();
            let changes = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .filter(|(k, _)| k == "changes")
                .map(|(_, v)| v.into_owned())
                .filter(|v| !v.is_empty())
                .collect();
            let request = super::commit::CommitRequest {
                repo: q.get("repo").filter(|r| !r.is_empty()).cloned(),
                tag: q.get("tag").filter(|t| !t.is_empty()).cloned(),
                comment: text("comment"),
                author: text("author"),
                pause: http::flag_or(&q, "pause", true),
                changes,
                config: http::typed_body(req.into_body()).await?,
            };
            let id = engine.commit(&c, request).await?;
            Ok(http::json(201, &json!({"Id": id})))
        }
        ["containers", name, "update"] if post => {
            let c = engine.find(name)?;
            let body: super::models::update::UpdateBody = http::typed_body(req.into_body()).await?;
            engine.update(&c, &body).await?;
            Ok(http::json(200, &json!({"Warnings": []})))
        }
        ["containers", name, "rename"] if post => {
            let c = engine.find(name)?;
            engine.rename(&c, q.get("name").map(String::as_str).unwrap_or(""))?;
            Ok(http::no_content())
        }
        ["events"] if get => super::events::route(engine, &q),
        ["networks", name, "connect"] if post => {
            let body: ConnectBody = http::typed_body(req.into_body()).await?;
            engine.connect(name, &body).await?;
            Ok(full_ok())
        }
        ["networks", name, "disconnect"] if post => {
            let body: DisconnectBody = http::typed_body(req.into_body()).await?;
            engine.disconnect(name, &body).await?;
            Ok(full_ok())
        }
        ["containers", name, "start"] if post => {
            let c = engine.find(name)?;
            engine.start(&c).await?;
            Ok(http::no_content())
        }
        ["containers", name, "stop"] if post => {
            let c = engine.find(name)?;
            engine.stop(&c, timeout(&q)).await?;
            Ok(http::no_content())
        }
        ["containers", name, "restart"] if post => {
            let c = engine.find(name)?;
            engine.restart(&c, timeout(&q)).await?;
            Ok(http::no_content())
        }
        ["containers", name, "kill"] if post => {
            let c = engine.find(name)?;
            let signal = parse_signal(q.get("signal").map(String::as_str).unwrap_or("KILL"))?;
            engine.kill(&c, signal).await?;
            Ok(http::no_content())
        }
        ["containers", name, "pause"] if post => {
            let c = engine.find(name)?;
            engine.set_paused(&c, true).await?;
            Ok(http::no_content())
        }
        ["containers", name, "unpause"] if post => {
            let c = engine.find(name)?;
            engine.set_paused(&c, false).await?;
            Ok(http::no_content())
        }
        ["containers", name, "wait"] if post => {
            let c = engine.find(name)?;
            let condition = q.get("condition").cloned().unwrap_or_default();
            let done = engine.wait(&c, &condition)?;
            let (tx, resp) = http::streaming("application/json");
            tokio::spawn(async move {
                let (code, error) = done.await;
                let error = match error.is_empty() {
                    true => Value::Null,
                    false => json!({"Message": error}),
                };
                let body = json!({"StatusCode": code, "Error": error});
                let _ = tx.send(Bytes::from(format!("{body}\n"))).await;
            });
            Ok(resp)
        }
        [.., "containers", name] if delete => {
            let c = engine.find(name)?;
            engine
                .remove_with(&c, flag(&q, "force"), flag(&q, "v"))
                .await?;
            Ok(http::no_content())
        }
        ["containers", name, "resize"] if post => {
            let c = engine.find(name)?;
            let exec_id = engine.resize_target(&c)?;
            engine.guest.resize(exec_id, size_of(&q)?).await?;
            Ok(full_ok())
        }
        ["containers", name, "logs"] if get => {
            let c = engine.find(name)?;
            logs_response(engine, c, &q).await
        }
        ["containers", name, "attach"] if post => {
            let c = engine.find(name)?;
            let st = c.state();
            let stream = flag(&q, "stream");
            let with_logs = flag(&q, "logs");
            if !stream && !with_logs {
                return Err(ApiError::bad_request(
                    "attach needs stream=1 or logs=1: there is nothing to send otherwise",
                ));
            }
            if stream && !st.running && st.status != super::state::Status::Created {
                return Err(ApiError::conflict(
                    "You cannot attach to a stopped container, start it first",
                ));
            }
            let tty = c.record().spec.tty;
            let want = (flag(&q, "stdin"), flag(&q, "stdout"), flag(&q, "stderr"));
            let keys = super::detach::keys_or_default(q.get("detachKeys").map(String::as_str))
                .map_err(ApiError::bad_request)?;
            // The log so far and the live output, taken under the log writer's lock.
            let (past, output) = {
                let _writer = c.log.lock().await;
                let past = match with_logs {
                    true => logs::read_all(&engine.store.log_path(&c.id)),
                    false => Vec::new(),
                };
                (past, c.out_tx.subscribe())
            };
            let upgrade = http::upgrade(&mut req);
            Ok(http::hijack(upgrade, http::stream_type(tty), move |io| {
                super::exec::run_attach(c, io, output, want, (tty, keys), (past, stream))
            }))
        }
        ["containers", name, "top"] if get => {
            let c = engine.find(name)?;
            match engine.query(&c, ContainerOp::Top).await? {
                ContainerResult::Top { processes } => {
                    Ok(http::json(200, &views::top(&processes, engine.started)))
                }
                other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
            }
        }
        ["containers", name, "stats"] if get => {
            let c = engine.find(name)?;
            stats_response(engine.clone(), c, &q).await
        }
        ["containers", name, "exec"] if post => {
            let c = engine.find(name)?;
            let body: ExecBody = http::typed_body(req.into_body()).await?;
            let id = engine.exec_create(&c, &body)?;
            Ok(http::json(201, &json!({"Id": id})))
        }
        ["exec", id, "start"] if post => {
            let e = engine.exec_find(id)?;
            let upgrade = http::upgrade(&mut req);
            let body: ExecStartBody = http::typed_body(req.into_body()).await?;
            super::fields::check_other("", &body.other)?;
            let detach = body.detach.unwrap_or(false);
            let tty = body.tty.unwrap_or(e.config.tty);
            let console = super::exec::console_size(body.console_size.as_deref());
            if detach {
                let exec = engine.exec_start(&e, Some(tty), console).await?;
                tokio::spawn(super::exec::run_exec::<http::Upgraded>(
                    engine.clone(),
                    e,
                    exec,
                    None,
                    tty,
                ));
                return Ok(full_ok());
            }
            engine.exec_startable(&e)?;
            let engine = engine.clone();
            Ok(http::hijack(upgrade, http::stream_type(tty), move |io| {
                super::exec::start_and_run(engine, e, io, tty, console)
            }))
        }
        ["exec", id, "json"] if get => Ok(http::json(200, &engine.exec_find(id)?.inspect())),
        ["exec", id, "resize"] if post => {
            let e = engine.exec_find(id)?;
            if let Some(guest_id) = e.state().guest_id {
                engine.guest.resize(guest_id, size_of(&q)?).await?;
            }
            Ok(full_ok())
        }
        ["images", "json"] if get => {
            let images = engine.images.index().read()?;
            let used = super::state::images_in_use(engine.machines_dir());
            let all = flag(&q, "all");
            let list: Vec<Value> = images
                .iter()
                .filter(|i| all || !i.intermediate)
                .map(|i| {
                    let n = used
                        .iter()
                        .filter(|(img, _)| *img == i.id().to_string())
                        .count();
                    views::image_entry(i, n as i64)
                })
                .collect();
            Ok(http::json(200, &Value::Array(list)))
        }
        ["images", "create"] if post => super::registry::create(engine.clone(), req, &q).await,
        ["build"] if post => super::builder::route(engine.clone(), req, &q).await,
        ["images", "get"] if get => {
            super::registry::save(engine, super::registry::save_names(&req))
        }
        ["images", "prune"] if post => super::registry::prune(engine, &q),
        ["images", rest @ .., "push"] if post && !rest.is_empty() => {
            let name = rest.join("/");
            super::registry::push(engine.clone(), req, &name, &q).await
        }
        ["images", rest @ .., "get"] if get && !rest.is_empty() => {
            super::registry::save(engine, vec![rest.join("/")])
        }
        ["images", rest @ .., "history"] if get && !rest.is_empty() => {
            super::registry::history(engine, &rest.join("/"))
        }
        ["distribution", rest @ .., "json"] if get && !rest.is_empty() => {
            super::registry::distribution(engine, &req, &rest.join("/")).await
        }
        ["auth"] if post => super::registry::auth(engine, req.into_body()).await,
        ["images", "load"] if post => {
            super::images::load(engine.clone(), req.into_body(), flag(&q, "quiet")).await
        }
        ["images", rest @ .., "json"] if get && !rest.is_empty() => {
            let name = rest.join("/");
            super::images::inspect(engine, &name)
        }
        ["images", rest @ .., "tag"] if post && !rest.is_empty() => {
            let name = rest.join("/");
            super::images::tag(engine, &name, &q)?;
            Ok(http::full(201, "", Bytes::new()))
        }
        ["images", rest @ ..] if delete && !rest.is_empty() => {
            let name = rest.join("/");
            Ok(http::json(
                200,
                &super::images::remove(engine, &name, flag(&q, "force"))?,
            ))
        }
        ["networks"] if get => Ok(http::json(
            200,
            &super::network_routes::networks_list(engine, q.get("filters").map(String::as_str))?,
        )),
        ["networks", "create"] if post => {
            let body = http::typed_body(req.into_body()).await?;
            Ok(http::json(
                201,
                &super::network_routes::network_create(engine, &body)?,
            ))
        }
        ["networks", "prune"] if post => Ok(http::json(
            200,
            &engine.prune_networks(&q, |id| super::network_routes::network_remove(engine, id))?,
        )),
        ["containers", "prune"] if post => Ok(http::json(200, &engine.prune_containers(&q).await?)),
        ["system", "df"] if get => Ok(http::json(200, &engine.disk_usage().await?)),
        ["swarm", ..]
        | ["services", ..]
        | ["nodes", ..]
        | ["secrets", ..]
        | ["configs", ..]
        | ["tasks", ..] => Err(super::system::not_a_swarm_manager()),
        ["networks", name] if get => {
            let n = engine.networks.find(name)?;
            Ok(http::json(
                200,
                &super::networks::view(&n, &super::network_routes::network_members(engine, &n.id)),
            ))
        }
        ["networks", name] if delete => {
            super::network_routes::network_remove(engine, name)?;
            Ok(http::full(204, "", Bytes::new()))
        }
        ["volumes", rest @ ..] => {
            super::volumes::route(engine, method, rest, &q, http::typed_body(req.into_body())).await
        }
        ["berth", "machine"] if get => Ok(http::json(200, &machine_info(engine))),
        ["berth", "machine", "stop"] if post => {
            let t = q.get("t").and_then(|t| t.parse().ok()).unwrap_or(10);
            let _ = ctl.stop.send(Some(t));
            Ok(http::json(200, &json!({"Stopping": true})))
        }
        _ => Err(ApiError::not_found(format!(
            "page not found: {method} {path} (berth serves a subset of the Docker Engine API)"
        ))),
    }
}

fn full_ok() -> Response<Body> {
    http::full(200, "", Bytes::new())
}

fn ping() -> Response<Body> {
    let mut resp = http::full(200, "text/plain; charset=utf-8", "OK");
    let h = resp.headers_mut();
    h.insert(
        "Docker-Experimental",
        hyper::header::HeaderValue::from_static("false"),
    );
    h.insert(
        "Builder-Version",
        hyper::header::HeaderValue::from_static("1"),
    );
    h.insert(
        "Cache-Control",
        hyper::header::HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    resp
}

/// `t`: seconds between the stop signal and SIGKILL; `-1` waits without limit. Absent,
/// the container's own stop timeout applies.
fn timeout(q: &std::collections::HashMap<String, String>) -> Option<Duration> {
    let secs = q.get("t").and_then(|t| t.parse::<i64>().ok())?;
    Some(match secs {
        s if s < 0 => Duration::from_secs(u32::MAX as u64),
        s => Duration::from_secs(s as u64),
    })
}

fn size_of(
    q: &std::collections::HashMap<String, String>,
) -> Result<berth_protocol::TtySize, ApiError> {
    let dim = |k: &str| -> Result<u16, ApiError> {
        q.get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ApiError::bad_request(format!("resize needs a numeric {k}")))
    };
    Ok(berth_protocol::TtySize {
        rows: dim("h")?,
        cols: dim("w")?,
    })
}

/// A signal by name (`KILL`, `SIGKILL`) or number.
pub fn parse_signal(text: &str) -> Result<i32, ApiError> {
    if let Ok(n) = text.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let name = text.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => return Err(ApiError::bad_request(format!("invalid signal: {text}"))),
    };
    Ok(n)
}

async fn logs_response(
    engine: &Arc<Engine>,
    c: Arc<Container>,
    q: &std::collections::HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    // `since`/`until`: Unix seconds as the docker CLI sends them; 0 is "not given".
    let time = |key: &str| -> Result<Option<u128>, ApiError> {
        match q.get(key).map(String::as_str) {
            None | Some("") | Some("0") => Ok(None),
            Some(t) => super::events::parse_time(t).map(Some),
        }
    };
    let filter = Filter {
        stdout: flag(q, "stdout"),
        stderr: flag(q, "stderr"),
        tail: match q.get("tail").map(String::as_str) {
            None | Some("") | Some("all") => None,
            Some(t) => Some(t.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid tail {t:?}: a number or all"))
            })?),
        },
        timestamps: flag(q, "timestamps"),
        since: time("since")?,
        until: time("until")?,
    };
    if !filter.stdout && !filter.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let follow = flag(q, "follow");
    let tty = c.record().spec.tty;
    let path = engine.store.log_path(&c.id);
    // Read the file and subscribe under the writer's lock: no entry is missed or doubled.
    let (entries, mut live, mut phase) = {
        let _writer = c.log.lock().await;
        (
            logs::read_all(&path),
            c.log_tx.subscribe(),
            c.phase.subscribe(),
        )
    };
    let (tx, resp) = http::streaming(http::stream_type(tty));
    let render = move |e: &logs::Entry, f: &Filter| -> Bytes {
        let text = f.render(e);
        match tty {
            true => Bytes::from(text),
            false => Bytes::from(logs::frame(e.stream.frame_byte(), &text)),
        }
    };
    tokio::spawn(async move {
        for e in filter.select(entries) {
            if tx.send(render(&e, &filter)).await.is_err() {
                return;
            }
        }
        if !follow || !phase.borrow_and_update().running {
            return;
        }
        loop {
            tokio::select! {
                e = live.recv() => match e {
                    Ok(e) if filter.wants(&e) => {
                        if tx.send(render(&e, &filter)).await.is_err() { return; }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
                changed = phase.changed() => {
                    if changed.is_err() || !phase.borrow_and_update().running {
                        // Entries written before the exit are already in the channel.
                        while let Ok(e) = live.try_recv() {
                            if filter.wants(&e) && tx.send(render(&e, &filter)).await.is_err() { return; }
                        }
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    Ok(resp)
}

async fn stats_response(
    engine: Arc<Engine>,
    c: Arc<Container>,
    q: &std::collections::HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let stream = super::http::flag_or(q, "stream", true);
    let one_shot = flag(q, "one-shot");
    let sample = |engine: Arc<Engine>, c: Arc<Container>| async move {
        match engine.query(&c, ContainerOp::Stats).await? {
            ContainerResult::Stats(s) => Ok((s, SystemTime::now())),
            other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
        }
    };
    let first = sample(engine.clone(), c.clone()).await?;
    if !stream {
        let value = if one_shot {
            views::stats(&c, &first.0, None, first.1)
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let second = sample(engine.clone(), c.clone()).await?;
            views::stats(&c, &second.0, Some((&first.0, first.1)), second.1)
        };
        return Ok(http::json(200, &value));
    }
    let (tx, resp) = http::streaming("application/json");
    tokio::spawn(async move {
        let mut pre = first;
        let first_value = views::stats(&c, &pre.0, None, pre.1);
        if tx
            .send(Bytes::from(format!("{first_value}\n")))
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Ok(now) = sample(engine.clone(), c.clone()).await else {
                return;
            };
            let v = views::stats(&c, &now.0, Some((&pre.0, pre.1)), now.1);
            if tx.send(Bytes::from(format!("{v}\n"))).await.is_err() {
                return;
            }
            pre = now;
        }
    });
    Ok(resp)
}

fn version(engine: &Engine) -> Value {
    let v = env!("CARGO_PKG_VERSION");
    json!({
        "Platform": {"Name": "berth"},
        "Components": [{
            "Name": "Engine", "Version": v,
            "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                        "Os": "linux", "Arch": "amd64", "KernelVersion": engine.kernel_release}
        }],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": engine.kernel_release,
        "BuildTime": "",
    })
}

fn info(engine: &Engine) -> Value {
    let all = engine.all();
    let count = |f: &dyn Fn(&Container) -> bool| all.iter().filter(|c| f(c)).count();
    let running = count(&|c| c.state().running && !c.state().paused);
    let paused = count(&|c| c.state().paused);
    let images = engine.images.index().read().map(|i| i.len()).unwrap_or(0);
    let mut base = json!({
        "ID": engine.machine.name,
        "Containers": all.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": all.len() - running - paused,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [],
        "Plugins": {"Volume": [], "Network": [], "Authorization": null, "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": false,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": crate::image::time::rfc3339_nanos(SystemTime::now()),
    });
    let more = json!({
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2",
        "NEventsListener": 0,
        "KernelVersion": engine.kernel_release,
        "OperatingSystem": "berth (Linux in a QEMU VM)",
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": "x86_64",
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": []},
        "NCPU": engine.config.cpus,
        "MemTotal": engine.config.memory_mib * 1024 * 1024,
        "DockerRootDir": engine.machine.dir.display().to_string(),
        "Name": format!("berth-{}", engine.machine.name),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"berth": {"path": "berth-init"}},
        "DefaultRuntime": "berth",
        "Swarm": {"LocalNodeState": "inactive", "ControlAvailable": false, "NodeID": "", "NodeAddr": "", "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": false,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
        "Warnings": [],
    });
    if let (Some(a), Value::Object(b)) = (base.as_object_mut(), more) {
        a.extend(b);
    }
    base
}

fn machine_info(engine: &Engine) -> Value {
    json!({
        "Name": engine.machine.name,
        "Pid": std::process::id(),
        "KernelRelease": engine.kernel_release,
        "Config": engine.config,
        "Started": crate::image::time::rfc3339_nanos(engine.started),
        "Containers": engine.all().len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
