//! `POST /containers/{id}/update` (`docker update`): memory, CPUs, pids and the restart
//! policy, recorded for later starts and, on a running container, written to its cgroup.

use berth_protocol::{ContainerOp, ContainerResult};

use super::engine::{Container, Engine};
use super::error::ApiError;
use super::models::update::UpdateBody;
use super::restart::Policy;

impl Engine {
    pub async fn update(&self, c: &Container, body: &UpdateBody) -> Result<(), ApiError> {
        super::fields::check_other("", &body.other)?;
        let r = c.record();
        let mut res = r.spec.resources.clone();
        let positive = |v: Option<i64>| v.filter(|n| *n > 0).map(|n| n as u64);
        if let Some(m) = positive(body.memory) {
            res.memory = Some(m);
        }
        let period = positive(body.cpu_period).unwrap_or(100_000);
        if let Some(n) = positive(body.nano_cpus) {
            res.millicpus = Some(n / 1_000_000);
        } else if let Some(q) = positive(body.cpu_quota) {
            res.millicpus = Some(q * 1000 / period);
        }
        if let Some(s) = positive(body.cpu_shares) {
            res.cpu_shares = Some(s);
        }
        if let Some(cpus) = body.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
            res.cpuset_cpus = Some(cpus);
        }
        if let Some(p) = body.pids_limit.filter(|n| *n != 0) {
            res.pids_limit = Some(p);
        }
        super::limits::check(&res, self.config.cpus)?;
        let policy = match &body.restart_policy {
            Some(p) if p.name.as_deref().is_some_and(|n| !n.is_empty()) => {
                let policy = Policy::from_request(p)?;
                if r.spec.auto_remove && policy != Policy::No {
                    return Err(ApiError::bad_request(
                        "Restart policy cannot be updated because AutoRemove is enabled for the container",
                    ));
                }
                Some(policy)
            }
            _ => None,
        };
        if c.state().running {
            match self
                .guest
                .container_op(&c.id, ContainerOp::Update(res.clone()))
                .await?
            {
                ContainerResult::Done => {}
                ContainerResult::Failed { message } => return Err(ApiError::internal(message)),
                other => return Err(ApiError::internal(format!("unexpected answer {other:?}"))),
            }
        }
        c.update_record(&self.store, |r| {
            // Inspect's HostConfig shows what is in force now.
            let h = &mut r.host_config;
            h.memory = res.memory.map(|m| m as i64);
            h.nano_cpus = res.millicpus.map(|m| (m * 1_000_000) as i64);
            h.cpu_quota = None;
            h.cpu_shares = res.cpu_shares.map(|s| s as i64);
            h.cpuset_cpus = res.cpuset_cpus.clone();
            h.pids_limit = res.pids_limit;
            r.spec.resources = res;
            if let Some(p) = policy {
                r.spec.restart = p;
                h.restart_policy = Some(p.to_request());
            }
        });
        self.events.container(c, "update");
        Ok(())
    }
}
