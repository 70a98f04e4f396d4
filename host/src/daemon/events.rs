//! `GET /events`: what happened to containers, images, networks and volumes, in Docker's
//! shape. The engine publishes every event here; the last [`KEPT`] are kept for `since`,
//! and live subscribers get the rest as they happen.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::Response;
use serde::Serialize;
use tokio::sync::broadcast;

use super::engine::Engine;
use super::error::ApiError;
use super::http::{self, Body};

/// How many past events `since` can reach (Docker keeps 256).
pub const KEPT: usize = 256;

/// One event, serialized as Docker's `EventMessage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The legacy fields, still read by docker-py and compose 1.x.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: u64,
    #[serde(rename = "timeNano")]
    pub time_nano: u128,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    pub fn new(kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) -> Event {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let legacy = kind == "container" || kind == "image";
        Event {
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: match kind {
                "container" => attributes.get("image").cloned(),
                _ => None,
            },
            kind: kind.into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes,
            },
            scope: "local".into(),
            time: now.as_secs(),
            time_nano: now.as_nanos(),
        }
    }
}

/// The event bus of one daemon.
pub struct Events {
    past: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            past: Mutex::new(VecDeque::with_capacity(KEPT)),
            live: broadcast::channel(1024).0,
        }
    }
}

impl Events {
    pub fn publish(&self, event: Event) {
        tracing::debug!("event {} {} {}", event.kind, event.action, event.actor.id);
        let mut past = self.past.lock().unwrap_or_else(|p| p.into_inner());
        if past.len() == KEPT {
            past.pop_front();
        }
        past.push_back(event.clone());
        // Published under the lock, so a subscriber never misses or repeats one.
        let _ = self.live.send(event);
    }

    /// The kept events and a receiver for every later one.
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let past = self.past.lock().unwrap_or_else(|p| p.into_inner());
        (past.iter().cloned().collect(), self.live.subscribe())
    }
}

/// `filters` of `GET /events`: each key's values are alternatives; every key must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    keys: BTreeMap<String, Vec<String>>,
}

impl Filter {
    /// Docker's `{"type": ["container"], "event": ["start"]}` (or the older
    /// `{"type": {"container": true}}`).
    pub fn parse(json: Option<&str>) -> Result<Filter, ApiError> {
        let keys = super::filters::parse(json)?;
        for key in keys.keys() {
            if !matches!(
                key.as_str(),
                "type"
                    | "event"
                    | "container"
                    | "image"
                    | "label"
                    | "network"
                    | "volume"
                    | "scope"
                    | "daemon"
            ) {
                return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
            }
        }
        Ok(Filter { keys })
    }

    pub fn matches(&self, e: &Event) -> bool {
        self.keys.iter().all(|(key, wanted)| {
            let attr = |k: &str| e.actor.attributes.get(k).map(String::as_str);
            wanted.iter().any(|w| match key.as_str() {
                "type" => e.kind == *w,
                // `health_status: healthy` matches `health_status` too.
                "event" => e.action == *w || e.action.split(':').next() == Some(w.as_str()),
                "container" => {
                    e.kind == "container"
                        && (e.actor.id.starts_with(w.as_str()) || attr("name") == Some(w))
                        || attr("container") == Some(w)
                }
                "image" => {
                    attr("image") == Some(w)
                        || (e.kind == "image" && (e.actor.id == *w || attr("name") == Some(w)))
                }
                "network" => {
                    e.kind == "network"
                        && (e.actor.id.starts_with(w.as_str()) || attr("name") == Some(w))
                }
                "volume" => e.kind == "volume" && e.actor.id == *w,
                "label" => match w.split_once('=') {
                    Some((k, v)) => attr(k) == Some(v),
                    None => attr(w).is_some(),
                },
                "scope" => e.scope == *w,
                _ => true,
            })
        })
    }
}

/// `since` / `until` of `GET /events`: Unix seconds (with an optional fraction), or a
/// duration before now such as `10m`, as the docker CLI sends them.
pub fn parse_time(text: &str) -> Result<u128, ApiError> {
    let bad = || ApiError::bad_request(format!("invalid time {text:?}: expected Unix seconds"));
    if let Some(secs) = text.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        return Ok(now.as_nanos().saturating_sub((secs * 1e9) as u128));
    }
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: u128 = secs.parse().map_err(|_| bad())?;
    let mut nanos = 0u128;
    if !frac.is_empty() {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().map_err(|_| bad())?;
    }
    Ok(secs * 1_000_000_000 + nanos)
}

/// `GET /events?since=&until=&filters=`: the kept events from `since`, then live ones
/// until `until` passes or the client goes away.
pub fn route(
    engine: &Arc<Engine>,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::parse(q.get("filters").map(String::as_str))?;
    let time = |key: &str| {
        q.get(key)
            .filter(|s| !s.is_empty())
            .map(|s| parse_time(s))
            .transpose()
    };
    let (since, until) = (time("since")?, time("until")?);
    let (past, mut live) = engine.events.subscribe();
    let (tx, resp) = http::streaming("application/json");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let deadline = until
        .map(|u| tokio::time::Instant::now() + Duration::from_nanos(u.saturating_sub(now) as u64));
    tokio::spawn(async move {
        let line = |e: &Event| {
            let mut b = serde_json::to_vec(e).unwrap_or_default();
            b.push(b'\n');
            Bytes::from(b)
        };
        let in_range = |e: &Event| until.is_none_or(|u| e.time_nano <= u);
        if let Some(since) = since {
            for e in past.iter().filter(|e| e.time_nano >= since && in_range(e)) {
                if filter.matches(e) && tx.send(line(e)).await.is_err() {
                    return;
                }
            }
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                event = live.recv() => match event {
                    Ok(e) if !in_range(&e) => return,
                    Ok(e) => {
                        if filter.matches(&e) && tx.send(line(&e)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("an events client fell {n} events behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = &mut sleep => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(resp)
}

impl Events {
    /// A container event with Docker's attributes (labels, image, name).
    pub fn container(&self, c: &super::engine::Container, action: &str) {
        self.publish(Event::new("container", action, &c.id, c.attributes()));
    }

    /// A container event with extra attributes (`exitCode`, `signal`, `oldName`).
    pub fn container_with(
        &self,
        c: &super::engine::Container,
        action: &str,
        extra: &[(&str, String)],
    ) {
        let mut a = c.attributes();
        for (k, v) in extra {
            a.insert(k.to_string(), v.clone());
        }
        self.publish(Event::new("container", action, &c.id, a));
    }

    /// A network event; `container` for connect and disconnect.
    pub fn network(&self, id: &str, name: &str, action: &str, container: Option<&str>) {
        let mut a = BTreeMap::from([
            ("name".to_string(), name.to_string()),
            ("type".to_string(), "bridge".to_string()),
        ]);
        if let Some(c) = container {
            a.insert("container".into(), c.to_string());
        }
        self.publish(Event::new("network", action, id, a));
    }

    /// A volume event; `container` for mount.
    pub fn volume(&self, name: &str, action: &str, container: Option<&str>) {
        let mut a = BTreeMap::from([("driver".to_string(), "local".to_string())]);
        if let Some(c) = container {
            a.insert("container".into(), c.to_string());
        }
        self.publish(Event::new("volume", action, name, a));
    }

    /// An image event (`pull`, `tag`, `untag`, `delete`, `import`, `load`, `push`, `save`).
    pub fn image(&self, id: &str, name: &str, action: &str) {
        let a = BTreeMap::from([("name".to_string(), name.to_string())]);
        self.publish(Event::new("image", action, id, a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(action: &str, id: &str, name: &str) -> Event {
        let attrs = BTreeMap::from([
            ("name".to_string(), name.to_string()),
            ("image".to_string(), "busybox".to_string()),
            ("com.example".to_string(), "yes".to_string()),
        ]);
        Event::new("container", action, id, attrs)
    }

    #[test]
    fn events_have_dockers_shape() {
        let v = serde_json::to_value(container("start", "abc", "web")).unwrap();
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "start");
        assert_eq!(v["status"], "start");
        assert_eq!(v["from"], "busybox");
        assert_eq!(v["Actor"]["Attributes"]["name"], "web");
        assert!(v["timeNano"].as_u64().unwrap() > 0);
        let n =
            serde_json::to_value(Event::new("network", "create", "n1", BTreeMap::new())).unwrap();
        assert!(n.get("status").is_none());
    }

    #[test]
    fn filters_select_by_type_event_name_and_label() {
        let start = container("start", "abc123", "web");
        let die = container("die", "abc123", "web");
        let f = |json: &str| Filter::parse(Some(json)).unwrap();
        assert!(f(r#"{"type": ["container"], "event": ["start"]}"#).matches(&start));
        assert!(!f(r#"{"event": ["start"]}"#).matches(&die));
        assert!(f(r#"{"container": ["web"]}"#).matches(&die));
        assert!(f(r#"{"container": ["abc"]}"#).matches(&die));
        assert!(!f(r#"{"container": ["db"]}"#).matches(&die));
        assert!(f(r#"{"label": ["com.example=yes"]}"#).matches(&die));
        assert!(f(r#"{"type": {"container": true}}"#).matches(&die));
        let health = container("health_status: healthy", "abc123", "web");
        assert!(f(r#"{"event": ["health_status"]}"#).matches(&health));
        assert!(Filter::parse(Some(r#"{"colour": ["red"]}"#)).is_err());
    }

    #[test]
    fn the_bus_keeps_the_last_events_and_streams_the_rest() {
        let bus = Events::default();
        for i in 0..KEPT + 5 {
            bus.publish(container("start", &i.to_string(), "x"));
        }
        let (past, mut live) = bus.subscribe();
        assert_eq!(past.len(), KEPT);
        assert_eq!(past[0].actor.id, "5");
        bus.publish(container("die", "new", "x"));
        assert_eq!(live.try_recv().unwrap().action, "die");
    }

    #[test]
    fn times_are_unix_seconds() {
        assert_eq!(parse_time("12").unwrap(), 12_000_000_000);
        assert_eq!(parse_time("12.5").unwrap(), 12_500_000_000);
        assert!(parse_time("yesterday").is_err());
    }
}
