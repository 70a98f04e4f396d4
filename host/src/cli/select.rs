//! Which machine a command means: one rule for every command.
//!
//! The selection comes from the global `--machine NAME`, else `$BERTH_MACHINE`, else
//! `default`. A `berth machine` verb may also name its machine (`machine rm dev`); that
//! name wins over `$BERTH_MACHINE` (it was typed for this command), and it must agree with
//! a `--machine` given on the same command line, so no verb can act on a machine other
//! than the one the user named.

use crate::machine::DEFAULT;
use crate::Error;

/// The environment variable that selects a machine.
pub const ENV: &str = "BERTH_MACHINE";

/// Where the user named a machine, if anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `--machine NAME` on the command line.
    pub flag: Option<String>,
    /// `$BERTH_MACHINE`.
    pub env: Option<String>,
}

impl Selection {
    /// The selection from `--machine` and the process environment. An empty value counts
    /// as not given.
    pub fn new(flag: Option<String>) -> Selection {
        Selection::from_parts(flag, std::env::var(ENV).ok())
    }

    /// The selection from a `--machine` value and a `$BERTH_MACHINE` value.
    pub fn from_parts(flag: Option<String>, env: Option<String>) -> Selection {
        Selection {
            flag: flag.filter(|f| !f.is_empty()),
            env: env.filter(|v| !v.is_empty()),
        }
    }

    /// The machine container commands talk to.
    pub fn machine(&self) -> &str {
        self.flag
            .as_deref()
            .or(self.env.as_deref())
            .unwrap_or(DEFAULT)
    }

    /// The machine of a `berth machine` verb whose NAME is `named` (when given).
    pub fn for_verb(&self, named: Option<&str>) -> Result<String, Error> {
        match (named, self.flag.as_deref()) {
            (Some(n), Some(f)) if n != f => Err(Error::Usage(format!(
                "--machine {f} and the machine name {n} disagree: name one machine"
            ))),
            (Some(n), _) => Ok(n.to_string()),
            (None, _) => Ok(self.machine().to_string()),
        }
    }

    /// How the machine was chosen, for messages ("from $BERTH_MACHINE").
    pub fn source(&self) -> &'static str {
        match (&self.flag, &self.env) {
            (Some(_), _) => "from --machine",
            (None, Some(_)) => "from $BERTH_MACHINE",
            (None, None) => "the default",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(flag: Option<&str>, env: Option<&str>) -> Selection {
        Selection {
            flag: flag.map(String::from),
            env: env.map(String::from),
        }
    }

    #[test]
    fn flag_then_env_then_default() {
        assert_eq!(sel(None, None).machine(), "default");
        assert_eq!(sel(None, Some("dev")).machine(), "dev");
        assert_eq!(sel(Some("ci"), Some("dev")).machine(), "ci");
    }

    #[test]
    fn machine_verbs_honour_the_selection_when_no_name_is_given() {
        assert_eq!(sel(None, Some("dev")).for_verb(None).unwrap(), "dev");
        assert_eq!(sel(Some("ci"), None).for_verb(None).unwrap(), "ci");
        assert_eq!(sel(None, None).for_verb(None).unwrap(), "default");
    }

    #[test]
    fn a_typed_name_wins_over_the_environment() {
        assert_eq!(
            sel(None, Some("dev")).for_verb(Some("default")).unwrap(),
            "default"
        );
        assert_eq!(sel(Some("dev"), None).for_verb(Some("dev")).unwrap(), "dev");
    }

    #[test]
    fn a_name_that_disagrees_with_the_flag_is_refused() {
        let err = sel(Some("dev"), None)
            .for_verb(Some("default"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--machine dev") && err.contains("default"),
            "{err}"
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let s = Selection::from_parts(Some(String::new()), Some(String::new()));
        assert_eq!(s.machine(), "default");
        assert_eq!(s.source(), "the default");
        let s = Selection::from_parts(Some(String::new()), Some("dev".into()));
        assert_eq!(s.machine(), "dev");
        assert_eq!(s.source(), "from $BERTH_MACHINE");
    }
}
