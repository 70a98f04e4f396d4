//! Healthchecks (`HEALTHCHECK`, `--health-cmd`, compose's `healthcheck:`): the check a
//! container runs, merged from its request and its image as Docker merges them, and the
//! task that runs it inside the container while the container runs, keeping Docker's
//! `State.Health` (status, failing streak, the last five results).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_protocol::{ExecSpec, GuestMessage, JoinSpec};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::engine::{Container, Engine};
use super::error::ApiError;
use super::models::HealthConfig;
use crate::image::time::rfc3339_nanos;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u32 = 3;
/// Docker keeps this many results in `State.Health.Log`.
const LOG_ENTRIES: usize = 5;
/// And this much of each result's output.
const OUTPUT_LIMIT: usize = 4096;

/// The check a container runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// The process to run: `CMD` arguments, or `/bin/sh -c` and a `CMD-SHELL` line.
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub start_interval: Duration,
}

impl Check {
    /// The request's healthcheck over the image's: an empty `Test` inherits the image's
    /// test, a zero duration or count the image's value; `["NONE"]` turns checks off.
    pub fn merged(
        request: Option<&HealthConfig>,
        image: Option<&HealthConfig>,
    ) -> Result<Option<Check>, ApiError> {
        let empty = HealthConfig::default();
        let req = request.unwrap_or(&empty);
        let img = image.unwrap_or(&empty);
        let test = req
            .test
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| img.test.clone())
            .unwrap_or_default();
        let argv = match test.first().map(String::as_str) {
            None | Some("NONE") => return Ok(None),
            Some("CMD") if test.len() > 1 => test[1..].to_vec(),
            Some("CMD-SHELL") if test.len() == 2 => {
                vec!["/bin/sh".into(), "-c".into(), test[1].clone()]
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Healthcheck.Test {test:?}: expected [\"NONE\"], [\"CMD\", ARGS...] or [\"CMD-SHELL\", COMMAND]"
                )))
            }
        };
        let duration = |name: &str, r: Option<i64>, i: Option<i64>, default: Duration| {
            let nanos = r.filter(|n| *n != 0).or(i.filter(|n| *n != 0));
            match nanos {
                None => Ok(default),
                Some(n) if n < 1_000_000 => Err(ApiError::bad_request(format!(
                    "Healthcheck.{name} in Healthcheck cannot be less than 1ms"
                ))),
                Some(n) => Ok(Duration::from_nanos(n as u64)),
            }
        };
        let start_period = match req.start_period.filter(|n| *n != 0).or(img.start_period) {
            Some(n) if n < 0 => {
                return Err(ApiError::bad_request(
                    "Healthcheck.StartPeriod can't be negative",
                ))
            }
            n => Duration::from_nanos(n.unwrap_or(0) as u64),
        };
        let retries = match req.retries.filter(|n| *n != 0).or(img.retries) {
            Some(n) if n < 0 => {
                return Err(ApiError::bad_request(
                    "Healthcheck.Retries can't be negative",
                ))
            }
            Some(0) | None => DEFAULT_RETRIES,
            Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
        };
        Ok(Some(Check {
            argv,
            interval: duration("Interval", req.interval, img.interval, DEFAULT_INTERVAL)?,
            timeout: duration("Timeout", req.timeout, img.timeout, DEFAULT_TIMEOUT)?,
            retries,
            start_period,
            start_interval: duration(
                "StartInterval",
                req.start_interval,
                img.start_interval,
                DEFAULT_START_INTERVAL,
            )?,
        }))
    }
}

/// Docker's `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

/// One result in `State.Health.Log`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

impl Health {
    pub fn starting() -> Health {
        Health {
            status: "starting".into(),
            ..Health::default()
        }
    }

    /// Records one result; the new status when it changed. A failure in the start
    /// period does not count towards `retries`, as Docker's.
    pub fn record(&mut self, probe: Probe, check: &Check, in_start_period: bool) -> Option<String> {
        let before = self.status.clone();
        if probe.exit_code == 0 {
            self.failing_streak = 0;
            self.status = "healthy".into();
        } else if !in_start_period || self.status != "starting" {
            self.failing_streak += 1;
            if self.failing_streak >= check.retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(probe);
        if self.log.len() > LOG_ENTRIES {
            self.log.remove(0);
        }
        (self.status != before).then(|| self.status.clone())
    }
}

impl Engine {
    /// Runs the container's healthcheck until the container's current run ends.
    pub(super) async fn run_health(self: Arc<Self>, c: Arc<Container>, check: Check) {
        let mut phase = c.phase.subscribe();
        let run = phase.borrow().exits;
        let started = tokio::time::Instant::now();
        c.set_health(&self.store, Some(Health::starting()));
        loop {
            let in_start = started.elapsed() < check.start_period;
            let wait = if in_start {
                check.start_interval
            } else {
                check.interval
            };
            let ended =
                tokio::time::timeout(wait, phase.wait_for(|p| p.exits != run || !p.running));
            if ended.await.is_ok() {
                return;
            }
            if c.state().paused {
                continue;
            }
            let probe = self.probe(&c, &check).await;
            let in_start = started.elapsed() < check.start_period;
            if phase.borrow().exits != run {
                return;
            }
            if let Some(status) = c.record_probe(&self.store, probe, &check, in_start) {
                self.events
                    .container(&c, &format!("health_status: {status}"));
            }
        }
    }

    /// Runs the check once inside the container.
    async fn probe(&self, c: &Container, check: &Check) -> Probe {
        let start = SystemTime::now();
        let spec = ExecSpec {
            argv: check.argv.clone(),
            env: c.record().spec.env.clone(),
            cwd: None,
            stdin: false,
            tty: None,
            container: None,
            join: Some(JoinSpec {
                id: c.id.clone(),
                user: None,
                privileged: false,
                builtin: None,
                stopped: None,
            }),
        };
        let (exit_code, output) =
            match tokio::time::timeout(check.timeout, self.run_to_end(spec)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => (-1, e),
                Err(_) => (
                    -1,
                    format!("Health check exceeded timeout ({:?})", check.timeout),
                ),
            };
        Probe {
            start: rfc3339_nanos(start),
            end: rfc3339_nanos(SystemTime::now()),
            exit_code,
            output,
        }
    }

    /// Runs a process to its end: its exit code and its output (stdout then stderr).
    pub(super) async fn run_to_end(&self, spec: ExecSpec) -> Result<(i32, String), String> {
        let mut exec = self.guest.exec(spec).await.map_err(|e| e.to_string())?;
        let guest = self.guest.clone();
        let id = exec.id;
        let _done = scopeguard(move || guest.exec_done(id));
        let read = |mut s: berth_mux::Stream| async move {
            let mut buf = Vec::new();
            let _ = (&mut s)
                .take(OUTPUT_LIMIT as u64)
                .read_to_end(&mut buf)
                .await;
            // Keep draining so the process never blocks on a full pipe.
            let _ = tokio::io::copy(&mut s, &mut tokio::io::sink()).await;
            buf
        };
        let out = tokio::spawn(read(exec.stdout));
        let err = tokio::spawn(read(exec.stderr));
        let code = loop {
            match exec.events.recv().await {
                Some(GuestMessage::Exited { status, .. }) => break status.shell_code(),
                Some(GuestMessage::Error { message, .. }) => return Err(message),
                Some(_) => continue,
                None => return Err("the machine stopped".into()),
            }
        };
        let mut output = out.await.unwrap_or_default();
        output.extend(err.await.unwrap_or_default());
        output.truncate(OUTPUT_LIMIT);
        Ok((code, String::from_utf8_lossy(&output).into_owned()))
    }
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f()
            }
        }
    }
    Guard(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(test: &[&str], interval: i64, retries: i64) -> HealthConfig {
        HealthConfig {
            test: Some(test.iter().map(|s| s.to_string()).collect()),
            interval: Some(interval),
            retries: Some(retries),
            ..HealthConfig::default()
        }
    }

    #[test]
    fn the_request_overrides_the_image_field_by_field() {
        let image = cfg(&["CMD-SHELL", "wget -q localhost"], 5_000_000_000, 4);
        let c = Check::merged(None, Some(&image)).unwrap().unwrap();
        assert_eq!(c.argv, ["/bin/sh", "-c", "wget -q localhost"]);
        assert_eq!((c.interval, c.retries), (Duration::from_secs(5), 4));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        let req = cfg(&[], 1_000_000_000, 0);
        let c = Check::merged(Some(&req), Some(&image)).unwrap().unwrap();
        assert_eq!((c.interval, c.retries), (Duration::from_secs(1), 4));
        assert_eq!(c.argv[2], "wget -q localhost");
        assert_eq!(
            Check::merged(Some(&cfg(&["NONE"], 0, 0)), Some(&image)).unwrap(),
            None
        );
        assert_eq!(Check::merged(None, None).unwrap(), None);
        assert!(Check::merged(Some(&cfg(&["CMD"], 0, 0)), None).is_err());
        let err = Check::merged(Some(&cfg(&["CMD", "true"], 10, 0)), None).unwrap_err();
        assert!(err.message.contains("Interval"), "{}", err.message);
    }

    #[test]
    fn status_follows_the_failing_streak() {
        let check = Check::merged(Some(&cfg(&["CMD", "x"], 0, 2)), None)
            .unwrap()
            .unwrap();
        let probe = |code| Probe {
            exit_code: code,
            ..Probe::default()
        };
        let mut h = Health::starting();
        assert_eq!(h.record(probe(1), &check, true), None, "start period");
        assert_eq!(h.failing_streak, 0);
        assert_eq!(h.record(probe(1), &check, false), None);
        assert_eq!(
            h.record(probe(1), &check, false).as_deref(),
            Some("unhealthy")
        );
        assert_eq!(
            h.record(probe(0), &check, false).as_deref(),
            Some("healthy")
        );
        assert_eq!(h.failing_streak, 0);
        for _ in 0..10 {
            h.record(probe(0), &check, false);
        }
        assert_eq!(h.log.len(), LOG_ENTRIES);
    }
}
