//! What a pull or push reports as it goes, and Docker's JSON message for each report (the
//! docker CLI draws its progress bars from `progressDetail`).

use serde_json::{json, Value};

/// A layer's (or config's) state during a pull or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerState {
    /// Queued behind the download limit or another pull of the same blob.
    Waiting,
    /// The store holds it already.
    Exists,
    Downloading {
        current: u64,
        total: u64,
    },
    Verifying,
    Downloaded,
    /// Verified and in the store.
    Complete,
    Preparing,
    Pushing {
        current: u64,
        total: u64,
    },
    Pushed,
    /// The registry has it already.
    Mounted,
}

/// One report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `latest: Pulling from library/busybox`.
    Pulling { repository: String, tag: String },
    /// `The push refers to repository [localhost:5000/x]`.
    PushingTo { repository: String },
    /// A layer, by the first 12 hex digits of its digest.
    Layer { id: String, state: LayerState },
    /// A plain status line (`Digest: …`, `Status: …`).
    Status(String),
    /// The push's result: tag, manifest digest and size.
    Pushed {
        tag: String,
        digest: String,
        size: u64,
    },
}

/// Where reports go.
pub trait Progress: Send + Sync {
    fn report(&self, event: Event);
}

/// Reports nowhere.
pub struct Silent;

impl Progress for Silent {
    fn report(&self, _: Event) {}
}

impl Event {
    /// Docker's JSON messages for this report (a push's result is two).
    pub fn docker_json(&self) -> Vec<Value> {
        match self {
            Event::Pulling { repository, tag } => {
                vec![json!({"status": format!("Pulling from {repository}"), "id": tag})]
            }
            Event::PushingTo { repository } => vec![json!({
                "status": format!("The push refers to repository [{repository}]")
            })],
            Event::Status(s) => vec![json!({ "status": s })],
            Event::Layer { id, state } => vec![layer_json(id, state)],
            Event::Pushed { tag, digest, size } => vec![
                json!({"status": format!("{tag}: digest: {digest} size: {size}"), "progressDetail": {}}),
                json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": size}}),
            ],
        }
    }
}

fn layer_json(id: &str, state: &LayerState) -> Value {
    let simple = |status: &str| json!({"status": status, "progressDetail": {}, "id": id});
    match state {
        LayerState::Waiting => simple("Waiting"),
        LayerState::Exists => simple("Already exists"),
        LayerState::Verifying => simple("Verifying Checksum"),
        LayerState::Downloaded => simple("Download complete"),
        LayerState::Complete => simple("Pull complete"),
        LayerState::Preparing => simple("Preparing"),
        LayerState::Pushed => simple("Pushed"),
        LayerState::Mounted => simple("Layer already exists"),
        LayerState::Downloading { current, total } => json!({
            "status": "Downloading",
            "progressDetail": {"current": current, "total": total},
            "progress": bar(*current, *total),
            "id": id,
        }),
        LayerState::Pushing { current, total } => json!({
            "status": "Pushing",
            "progressDetail": {"current": current, "total": total},
            "progress": bar(*current, *total),
            "id": id,
        }),
    }
}

/// Docker's text bar, for clients that print `progress` as is.
fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH).checked_div(total).unwrap_or(0);
    let mut s = String::from("[");
    for i in 0..WIDTH {
        s.push(match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        });
    }
    s.push(']');
    format!(
        "{s} {}/{}",
        crate::size::human_size(current),
        crate::size::human_size(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_docker_fields() {
        let down = Event::Layer {
            id: "abc".into(),
            state: LayerState::Downloading {
                current: 5,
                total: 10,
            },
        }
        .docker_json();
        assert_eq!(down[0]["status"], "Downloading");
        assert_eq!(down[0]["progressDetail"]["current"], 5);
        assert_eq!(down[0]["progressDetail"]["total"], 10);
        assert_eq!(down[0]["id"], "abc");
        assert!(down[0]["progress"].as_str().unwrap().starts_with("[====="));
        let pushed = Event::Pushed {
            tag: "1".into(),
            digest: "sha256:x".into(),
            size: 527,
        }
        .docker_json();
        assert_eq!(pushed[0]["status"], "1: digest: sha256:x size: 527");
        assert_eq!(pushed[1]["aux"]["Size"], 527);
        let pulling = Event::Pulling {
            repository: "library/busybox".into(),
            tag: "latest".into(),
        }
        .docker_json();
        assert_eq!(pulling[0]["status"], "Pulling from library/busybox");
    }
}
