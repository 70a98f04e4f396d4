//! `GET /system/df` with the guest's sizes, `POST /containers/prune` and `POST /networks/prune` (with Docker's
//! `until` and `label` filters), and the swarm routes a node without swarm answers.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde_json::{json, Value};

use super::engine::Engine;
use super::error::ApiError;
use super::filters;
use super::guest::DiskUsage;
use crate::image::time::{parse_rfc3339, until};

/// Docker's answer on a node where swarm is inactive; clients that probe carry on.
pub fn not_a_swarm_manager() -> ApiError {
    ApiError::new(
        503,
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
    )
}

/// A prune's `until` and `label` / `label!` filters.
struct PruneFilter {
    until: Option<i64>,
    labels: Vec<String>,
    not_labels: Vec<String>,
}

impl PruneFilter {
    fn parse(q: &HashMap<String, String>) -> Result<PruneFilter, ApiError> {
        let keys = filters::parse(q.get("filters").map(String::as_str))?;
        filters::only(&keys, &["until", "label", "label!"])?;
        let until = match keys.get("until").and_then(|v| v.first()) {
            Some(u) => Some(until(u, SystemTime::now()).map_err(ApiError::bad_request)?),
            None => None,
        };
        Ok(PruneFilter {
            until,
            labels: keys.get("label").cloned().unwrap_or_default(),
            not_labels: keys.get("label!").cloned().unwrap_or_default(),
        })
    }

    fn selects(&self, created: &str, labels: &BTreeMap<String, String>) -> bool {
        let old_enough = match (self.until, parse_rfc3339(created)) {
            (Some(u), Some(t)) => t < u,
            (Some(_), None) => false,
            (None, _) => true,
        };
        old_enough
            && self
                .labels
                .iter()
                .all(|l| filters::label_matches(l, labels))
            && !self
                .not_labels
                .iter()
                .any(|l| filters::label_matches(l, labels))
    }
}

impl Engine {
    /// `POST /containers/prune`: removes the stopped containers the filters select.
    pub async fn prune_containers(&self, q: &HashMap<String, String>) -> Result<Value, ApiError> {
        let filter = PruneFilter::parse(q)?;
        let usage = self.guest_usage().await.unwrap_or_default();
        let mut deleted = Vec::new();
        for c in self.all() {
            let r = c.record();
            let labels = r.config.labels.clone().unwrap_or_default();
            if r.state.running || r.state.restarting || !filter.selects(&r.created, &labels) {
                continue;
            }
            match self.remove(&c, false).await {
                Ok(()) => deleted.push(r.id),
                Err(e) => tracing::warn!("prune: container {}: {e}", r.name),
            }
        }
        let reclaimed: u64 = deleted
            .iter()
            .filter_map(|id| usage.containers.get(id))
            .sum();
        Ok(json!({"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed}))
    }

    /// What the guest's disk holds per container and volume; empty (with a warning in
    /// the log) when the guest cannot say, so a report never fails for it.
    pub async fn guest_usage(&self) -> Option<DiskUsage> {
        match self.guest.disk_usage().await {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::warn!("disk usage: {e}");
                None
            }
        }
    }

    /// Adds Docker's `SizeRw` (the container's writable layer) and `SizeRootFs` (that
    /// and its image) to a list or inspect entry.
    pub fn add_sizes(&self, entry: &mut Value, r: &super::state::Record, usage: &DiskUsage) {
        let rw = usage.containers.get(&r.id).copied().unwrap_or(0);
        let image = self
            .images
            .find(&r.image_id)
            .ok()
            .flatten()
            .map(|i| i.size)
            .unwrap_or(0);
        entry["SizeRw"] = json!(rw);
        entry["SizeRootFs"] = json!(rw + image);
    }

    /// `POST /networks/prune`: user networks no container uses, that the filters select.
    pub fn prune_networks(
        &self,
        q: &HashMap<String, String>,
        remove: impl Fn(&str) -> Result<(), ApiError>,
    ) -> Result<Value, ApiError> {
        let filter = PruneFilter::parse(q)?;
        let deleted: Vec<String> = self
            .networks
            .all()
            .into_iter()
            .filter(|n| !n.is_predefined())
            .filter(|n| {
                let labels: BTreeMap<String, String> = n
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                filter.selects(&n.created, &labels)
            })
            .filter(|n| remove(&n.id).is_ok())
            .map(|n| n.name)
            .collect();
        Ok(json!({"NetworksDeleted": deleted}))
    }

    /// `GET /system/df`: images, containers (their writable layers) and volumes with
    /// their sizes; when the guest cannot say, containers leave them out and volumes say
    /// -1, Docker's "not computed".
    pub async fn disk_usage(&self) -> Result<Value, ApiError> {
        let usage = self.guest_usage().await;
        let images = self.images.index().read()?;
        let records: Vec<_> = self.all().iter().map(|c| c.record()).collect();
        let image_list: Vec<Value> = images
            .iter()
            .map(|i| {
                let id = i.id().to_string();
                let used = records.iter().filter(|r| r.image_id == id).count();
                let mut entry = super::views::image_entry(i, used as i64);
                entry["SharedSize"] = json!(0);
                entry
            })
            .collect();
        let layers: u64 = images.iter().map(|i| i.size).sum();
        let containers: Vec<Value> = self
            .all()
            .iter()
            .map(|c| {
                let mut entry = super::views::list_entry(c, SystemTime::now());
                if let Some(u) = &usage {
                    self.add_sizes(&mut entry, &c.record(), u);
                }
                entry
            })
            .collect();
        let volumes: Vec<Value> = self
            .volumes
            .list()
            .into_iter()
            .map(|v| {
                let refs = records
                    .iter()
                    .filter(|r| {
                        r.spec.mounts.iter().any(|m| {
                            matches!(&m.source, berth_protocol::MountSource::Volume { name } if *name == v.name)
                        })
                    })
                    .count();
                let mut view = v.view();
                let size = match &usage {
                    Some(u) => u.volumes.get(&v.name).map(|b| *b as i64).unwrap_or(0),
                    None => -1,
                };
                view["UsageData"] = json!({"Size": size, "RefCount": refs});
                view
            })
            .collect();
        Ok(json!({
            "LayersSize": layers,
            "Images": image_list,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": [],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_filters_select_by_age_and_label() {
        let q = |f: &str| HashMap::from([("filters".to_string(), f.to_string())]);
        let labels = BTreeMap::from([("keep".to_string(), "yes".to_string())]);
        let f = PruneFilter::parse(&q(r#"{"until": ["2020-01-01T00:00:00Z"]}"#)).unwrap();
        assert!(f.selects("2019-06-01T00:00:00Z", &labels));
        assert!(!f.selects("2021-06-01T00:00:00Z", &labels));
        let f = PruneFilter::parse(&q(r#"{"label!": ["keep=yes"]}"#)).unwrap();
        assert!(!f.selects("2019-06-01T00:00:00Z", &labels));
        assert!(f.selects("2019-06-01T00:00:00Z", &BTreeMap::new()));
        assert!(PruneFilter::parse(&q(r#"{"dangling": ["true"]}"#)).is_err());
    }
}
