//! The end of a container: `DELETE /containers/{id}` (with force: killed first), its
//! files in the guest deleted, and `POST /containers/{id}/wait` on Docker's conditions.

use std::sync::Arc;

use super::container::{Container, Phase};
use super::engine::{Engine, KILL_DEADLINE};
use super::error::ApiError;

impl Engine {
    /// `DELETE /containers/{id}`.
    pub async fn remove(&self, c: &Arc<Container>, force: bool) -> Result<(), ApiError> {
        self.remove_with(c, force, false).await
    }

    /// [`remove`](Self::remove); with `volumes` (`rm -v`, `run --rm`) its anonymous
    /// volumes go too, before anyone waiting for the removal hears of it, as in Docker.
    pub async fn remove_with(
        &self,
        c: &Arc<Container>,
        force: bool,
        volumes: bool,
    ) -> Result<(), ApiError> {
        c.user_action();
        if c.state().restarting && !force {
            return Err(ApiError::conflict(format!(
                "You cannot remove a restarting container {}. Stop the container before attempting removal or force remove",
                c.id
            )));
        }
        if c.state().running {
            if !force {
                return Err(ApiError::conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            let mut phase = c.phase.subscribe();
            c.update(&self.store, |r| r.stopped_by_user = true);
            let _ = self.signal(c, 9).await;
            if tokio::time::timeout(KILL_DEADLINE, phase.wait_for(|p| !p.running))
                .await
                .is_err()
            {
                return Err(ApiError::internal(format!(
                    "container {} did not die within {KILL_DEADLINE:?}",
                    c.short()
                )));
            }
            if c.phase.borrow().removed {
                return Ok(()); // auto-removed meanwhile
            }
        }
        if !self.forget(c)? {
            return Ok(());
        }
        if volumes {
            self.remove_anonymous_volumes(&c.record()).await;
        }
        c.phase.send_modify(|p| p.removed = true);
        self.events.container(c, "destroy");
        // Its files in the guest; ones left by a failure here go when the daemon next
        // comes up (`restore`).
        let which = berth_protocol::ContainerSet::These(vec![c.id.clone()]);
        match self.guest.remove_container_files(which).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("container {}: {e}", c.short()),
            Err(e) => tracing::warn!("container {}: deleting its files: {e}", c.short()),
        }
        Ok(())
    }

    /// Takes the container out of the list and its record off the disk; false when
    /// someone else already did.
    fn forget(&self, c: &Arc<Container>) -> Result<bool, ApiError> {
        let mut all = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        if !all.iter().any(|o| Arc::ptr_eq(o, c)) {
            return Ok(false);
        }
        self.store.remove(&c.id)?;
        all.retain(|o| !Arc::ptr_eq(o, c));
        Ok(true)
    }

    /// `POST /containers/{id}/wait`: resolves with the exit code and error once the
    /// condition holds. The condition is fixed against the state when this is called.
    pub fn wait(
        &self,
        c: &Arc<Container>,
        condition: &str,
    ) -> Result<impl std::future::Future<Output = (i32, String)> + Send + 'static, ApiError> {
        let mut phase = c.phase.subscribe();
        let now = *phase.borrow_and_update();
        let target = match condition {
            "" | "not-running" => Target::NotRunning,
            "next-exit" => Target::Exits(now.exits + 1),
            "removed" => Target::Removed,
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid condition {other:?}: use not-running, next-exit or removed"
                )))
            }
        };
        let c = c.clone();
        Ok(async move {
            let done = |p: &Phase| match target {
                Target::NotRunning => !p.running,
                Target::Exits(n) => p.exits >= n || p.removed,
                Target::Removed => p.removed,
            };
            let _ = phase.wait_for(done).await;
            let state = c.state();
            (state.exit_code, state.error)
        })
    }
}

#[derive(Clone, Copy)]
enum Target {
    NotRunning,
    Exits(u64),
    Removed,
}
