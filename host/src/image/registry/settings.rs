//! Registry settings from `<BERTH_HOME>/daemon.json`, with Docker's `daemon.json` names:
//! `registry-mirrors` (tried first for Docker Hub images), `insecure-registries` (plain
//! HTTP), `max-concurrent-downloads` and `max-concurrent-uploads`. `localhost` and
//! `127.0.0.0/8` always use plain HTTP, as Docker allows. A key berth does not know is an
//! error naming it, never silently ignored.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::RegistryError;
use crate::image::DEFAULT_DOMAIN;

/// Docker's defaults.
const DEFAULT_DOWNLOADS: usize = 3;
const DEFAULT_UPLOADS: usize = 5;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(rename = "registry-mirrors", default)]
    pub mirrors: Vec<String>,
    #[serde(rename = "insecure-registries", default)]
    pub insecure: Vec<String>,
    #[serde(rename = "max-concurrent-downloads", default)]
    max_downloads: Option<usize>,
    #[serde(rename = "max-concurrent-uploads", default)]
    max_uploads: Option<usize>,
}

/// Where to fetch from: a registry host and whether it speaks plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as it goes into URLs.
    pub host: String,
    pub insecure: bool,
    /// Whether this is a mirror of the reference's own registry.
    pub mirror: bool,
}

impl Settings {
    /// The settings file of this installation.
    pub fn path(home: &Path) -> PathBuf {
        home.join("daemon.json")
    }

    /// Reads `<home>/daemon.json`; a missing file is the defaults.
    pub fn load(home: &Path) -> Result<Settings, RegistryError> {
        let path = Self::path(home);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => {
                return Err(RegistryError::Config(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        Self::parse(&bytes).map_err(|e| RegistryError::Config(format!("{}: {e}", path.display())))
    }

    pub fn parse(bytes: &[u8]) -> Result<Settings, String> {
        let settings: Settings = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        for mirror in &settings.mirrors {
            mirror_host(mirror)?;
        }
        if settings.max_downloads == Some(0) || settings.max_uploads == Some(0) {
            return Err("max-concurrent-downloads and -uploads must be at least 1".into());
        }
        Ok(settings)
    }

    pub fn max_downloads(&self) -> usize {
        self.max_downloads.unwrap_or(DEFAULT_DOWNLOADS)
    }

    pub fn max_uploads(&self) -> usize {
        self.max_uploads.unwrap_or(DEFAULT_UPLOADS)
    }

    /// Whether `host` (`name[:port]`) is reached over plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = strip_port(host);
        if name == "localhost" || name == "[::1]" || name == "::1" {
            return true;
        }
        let ip: Option<Ipv4Addr> = name.parse().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.insecure.iter().any(|entry| {
            entry == host
                || match (entry.split_once('/'), ip) {
                    (Some((net, bits)), Some(ip)) => in_cidr(ip, net, bits),
                    _ => false,
                }
        })
    }

    /// The registry endpoints for `domain`, in the order to try: mirrors first (for
    /// Docker Hub only, as Docker), then the registry itself.
    pub fn endpoints(&self, domain: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if domain == DEFAULT_DOMAIN {
            for mirror in &self.mirrors {
                if let Ok((host, http)) = mirror_host(mirror) {
                    out.push(Endpoint {
                        insecure: http || self.is_insecure(&host),
                        host,
                        mirror: true,
                    });
                }
            }
        }
        out.push(Endpoint {
            host: domain.to_string(),
            insecure: self.is_insecure(domain),
            mirror: false,
        });
        out
    }
}

/// A mirror URL's host and whether it is `http://`.
fn mirror_host(url: &str) -> Result<(String, bool), String> {
    let (http, rest) = if let Some(r) = url.strip_prefix("http://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (false, r)
    } else {
        return Err(format!(
            "registry-mirrors: {url:?} must start with http:// or https://"
        ));
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(format!(
            "registry-mirrors: {url:?} must be a scheme and a host, without a path"
        ));
    }
    Ok((host.to_string(), http))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn in_cidr(ip: Ipv4Addr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<Ipv4Addr>(), bits.parse::<u32>()) else {
        return false;
    };
    if bits > 32 {
        return false;
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_insecure_and_others_need_listing() {
        let s =
            Settings::parse(br#"{"insecure-registries": ["reg.lan:5000", "10.0.0.0/8"]}"#).unwrap();
        assert!(s.is_insecure("localhost:5000"));
        assert!(s.is_insecure("127.0.0.1:5000"));
        assert!(s.is_insecure("127.8.9.1"));
        assert!(s.is_insecure("reg.lan:5000"));
        assert!(!s.is_insecure("reg.lan:5001"));
        assert!(s.is_insecure("10.1.2.3:80"));
        assert!(!s.is_insecure("11.1.2.3:80"));
        assert!(!s.is_insecure("docker.io"));
    }

    #[test]
    fn mirrors_come_first_for_docker_hub_only() {
        let s = Settings::parse(br#"{"registry-mirrors": ["http://127.0.0.1:5001/"]}"#).unwrap();
        let hub = s.endpoints("docker.io");
        assert_eq!(hub.len(), 2);
        assert_eq!(hub[0].host, "127.0.0.1:5001");
        assert!(hub[0].insecure && hub[0].mirror);
        assert_eq!(hub[1].host, "docker.io");
        assert!(!hub[1].insecure);
        assert_eq!(s.endpoints("quay.io").len(), 1);
    }

    #[test]
    fn unknown_keys_and_bad_mirrors_are_refused_by_name() {
        let err = Settings::parse(br#"{"registry-mirror": []}"#).unwrap_err();
        assert!(err.contains("registry-mirror"), "{err}");
        let err = Settings::parse(br#"{"registry-mirrors": ["mirror.lan"]}"#).unwrap_err();
        assert!(err.contains("http://"), "{err}");
        let err = Settings::parse(br#"{"max-concurrent-downloads": 0}"#).unwrap_err();
        assert!(err.contains("max-concurrent-downloads"), "{err}");
        let s = Settings::parse(b"{}").unwrap();
        assert_eq!((s.max_downloads(), s.max_uploads()), (3, 5));
    }
}
