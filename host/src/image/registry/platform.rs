//! The platform a pull picks from an index: the guest's (linux/amd64), never the host's, so
//! a macOS or Windows host still gets Linux images; `--platform os/arch[/variant]` chooses
//! another.

use std::fmt;

use super::RegistryError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    /// The guest's platform: berth's machines are x86_64 Linux.
    fn default() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// `linux/amd64`, `linux/arm64/v8`, `linux` (the guest's architecture). Architecture
    /// aliases are normalized as containerd does (`x86_64` is `amd64`, `aarch64` `arm64`).
    pub fn parse(text: &str) -> Result<Platform, RegistryError> {
        let bad = || {
            RegistryError::Invalid(format!(
                "invalid platform {text:?}: expected os/arch[/variant], such as linux/amd64"
            ))
        };
        let parts: Vec<&str> = text.trim().split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
            return Err(bad());
        }
        let os = parts[0].to_ascii_lowercase();
        let architecture = match parts.get(1).map(|a| a.to_ascii_lowercase()) {
            None => "amd64".to_string(),
            Some(a) => match a.as_str() {
                "x86_64" | "x86-64" => "amd64".into(),
                "aarch64" => "arm64".into(),
                _ => a,
            },
        };
        let variant = parts.get(2).map(|v| v.to_ascii_lowercase());
        Ok(Platform {
            os,
            architecture,
            variant,
        })
    }

    /// Whether an index entry (or an image config) of `os`/`arch`/`variant` is this one.
    /// Without a variant of our own, any variant matches.
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        os == self.os
            && arch == self.architecture
            && match (&self.variant, variant) {
                (None, _) => true,
                (Some(want), Some(got)) => want == got,
                (Some(_), None) => false,
            }
    }

    /// Whether berth's machines can run images of this platform.
    pub fn runnable(&self) -> bool {
        self.os == "linux" && self.architecture == "amd64"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        assert_eq!(Platform::parse("linux/amd64").unwrap(), Platform::default());
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap(),
            Platform::default()
        );
        assert_eq!(Platform::parse("linux").unwrap(), Platform::default());
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(arm.to_string(), "linux/arm64/v8");
        assert!(!arm.runnable());
        assert!(Platform::parse("linux//v8").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }

    #[test]
    fn variants_match_only_when_asked_for() {
        let any = Platform::parse("linux/arm64").unwrap();
        assert!(any.matches("linux", "arm64", Some("v8")));
        let v8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(v8.matches("linux", "arm64", Some("v8")));
        assert!(!v8.matches("linux", "arm64", None));
        assert!(!Platform::default().matches("windows", "amd64", None));
    }
}
