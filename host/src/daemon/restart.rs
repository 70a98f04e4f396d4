//! Restart policies (`--restart no|always|unless-stopped|on-failure[:N]`) and Docker's
//! back-off between restarts: 100 ms, doubled after each restart up to one minute, and
//! back to 100 ms once a run lasted ten seconds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::models::RestartPolicy;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
const RESET_AFTER: Duration = Duration::from_secs(10);

/// A container's restart policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name")]
pub enum Policy {
    #[default]
    No,
    Always,
    UnlessStopped,
    /// `max` 0 means no limit.
    OnFailure {
        max: u32,
    },
}

impl Policy {
    /// `HostConfig.RestartPolicy`, checked as Docker's daemon checks it.
    pub fn from_request(p: &RestartPolicy) -> Result<Policy, ApiError> {
        let count = p.maximum_retry_count.unwrap_or(0);
        let name = p.name.as_deref().unwrap_or("");
        if count < 0 {
            return Err(ApiError::bad_request(
                "invalid restart policy: maximum retry count can't be negative",
            ));
        }
        let policy = match name {
            "" | "no" => Policy::No,
            "always" => Policy::Always,
            "unless-stopped" => Policy::UnlessStopped,
            "on-failure" => Policy::OnFailure {
                max: u32::try_from(count).unwrap_or(u32::MAX),
            },
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
                )))
            }
        };
        if count != 0 && !matches!(policy, Policy::OnFailure { .. }) {
            return Err(ApiError::bad_request(format!(
                "invalid restart policy: maximum retry count can only be used with 'on-failure' (not '{}')",
                policy.name()
            )));
        }
        Ok(policy)
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::No => "no",
            Policy::Always => "always",
            Policy::UnlessStopped => "unless-stopped",
            Policy::OnFailure { .. } => "on-failure",
        }
    }

    pub fn max_retries(self) -> u32 {
        match self {
            Policy::OnFailure { max } => max,
            _ => 0,
        }
    }

    /// Docker's `RestartPolicy` object.
    pub fn to_request(self) -> RestartPolicy {
        RestartPolicy {
            name: Some(self.name().into()),
            maximum_retry_count: Some(self.max_retries().into()),
        }
    }

    /// Whether a container that exited with `code` after `restarts` policy restarts is
    /// started again. A container the user stopped or killed never is.
    pub fn should_restart(self, code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            Policy::No => false,
            Policy::Always | Policy::UnlessStopped => true,
            Policy::OnFailure { max } => code != 0 && (max == 0 || restarts < max),
        }
    }

    /// Whether the daemon starts the container again when it comes up (after a daemon or
    /// machine restart): `always`, and `unless-stopped` unless the user stopped it.
    pub fn starts_with_daemon(self, stopped_by_user: bool) -> bool {
        match self {
            Policy::Always => true,
            Policy::UnlessStopped => !stopped_by_user,
            _ => false,
        }
    }
}

/// The delay before each restart of one container.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    /// The delay before the next restart, after a run of `ran_for`.
    pub fn next(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= RESET_AFTER {
            self.delay = None;
        }
        let delay = match self.delay {
            None => FIRST_DELAY,
            Some(d) => (d * 2).min(MAX_DELAY),
        };
        self.delay = Some(delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, count: i64) -> Result<Policy, ApiError> {
        Policy::from_request(&RestartPolicy {
            name: Some(name.into()),
            maximum_retry_count: Some(count),
        })
    }

    #[test]
    fn policies_parse_as_dockers() {
        assert_eq!(policy("", 0).unwrap(), Policy::No);
        assert_eq!(policy("no", 0).unwrap(), Policy::No);
        assert_eq!(policy("always", 0).unwrap(), Policy::Always);
        assert_eq!(policy("unless-stopped", 0).unwrap(), Policy::UnlessStopped);
        assert_eq!(
            policy("on-failure", 2).unwrap(),
            Policy::OnFailure { max: 2 }
        );
        assert!(policy("sometimes", 0)
            .unwrap_err()
            .message
            .contains("sometimes"));
        assert!(policy("always", 3)
            .unwrap_err()
            .message
            .contains("on-failure"));
        assert!(policy("on-failure", -1).is_err());
    }

    #[test]
    fn who_restarts() {
        let on_failure = Policy::OnFailure { max: 2 };
        assert!(on_failure.should_restart(1, 0, false));
        assert!(on_failure.should_restart(1, 1, false));
        assert!(!on_failure.should_restart(1, 2, false), "only 2 retries");
        assert!(
            !on_failure.should_restart(0, 0, false),
            "a success is final"
        );
        assert!(Policy::OnFailure { max: 0 }.should_restart(3, 1000, false));
        assert!(Policy::Always.should_restart(0, 50, false));
        assert!(
            !Policy::Always.should_restart(0, 0, true),
            "the user stopped it"
        );
        assert!(!Policy::No.should_restart(1, 0, false));
        assert!(Policy::Always.starts_with_daemon(true));
        assert!(Policy::UnlessStopped.starts_with_daemon(false));
        assert!(!Policy::UnlessStopped.starts_with_daemon(true));
        assert!(!on_failure.starts_with_daemon(false));
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets_after_a_long_run() {
        let mut b = Backoff::default();
        let short = Duration::from_millis(5);
        let delays: Vec<u64> = (0..12).map(|_| b.next(short).as_millis() as u64).collect();
        assert_eq!(&delays[..4], [100, 200, 400, 800]);
        assert_eq!(*delays.last().unwrap(), 60_000);
        assert_eq!(b.next(Duration::from_secs(10)), FIRST_DELAY);
        assert_eq!(b.next(short), FIRST_DELAY * 2);
    }
}
