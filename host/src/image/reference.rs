//! Image references as Docker parses and normalizes them: `busybox` is
//! `docker.io/library/busybox:latest`, `user/app:1` is `docker.io/user/app:1`, and a first
//! component with a `.` or `:` (or `localhost`) names a registry.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Digest, ImageError};

/// The registry of names without one.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A normalized reference: registry, repository path, and a tag and/or a digest (a reference
/// without either gets the tag `latest`). `Display` writes the full form
/// (`docker.io/library/busybox:latest`); [`Reference::familiar`] the short one (`busybox:latest`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes `text`, refusing what Docker refuses.
    pub fn parse(text: &str) -> Result<Reference, ImageError> {
        let invalid = |reason: String| ImageError::InvalidReference {
            reference: text.to_string(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("the reference is empty".into()));
        }
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "a 64-character hexadecimal string is an image ID, not a repository name".into(),
            ));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(Digest::parse(d).map_err(|e| invalid(e.to_string()))?),
            ),
            None => (text, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(invalid)?;
        }
        let (domain, path) = split_domain(name);
        check_domain(domain).map_err(invalid)?;
        check_path(path).map_err(invalid)?;
        let (domain, path) = normalize(domain, path);
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(invalid(format!(
                "the repository name is longer than {MAX_NAME_LEN} characters"
            )));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The registry, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name: `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as Docker prints it: `busybox`, `user/app`, `localhost:5000/x/y`.
    pub fn familiar_repository(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.repository();
        }
        match self.path.strip_prefix(OFFICIAL_PREFIX) {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => self.path.clone(),
        }
    }

    /// The short form with tag and digest: `busybox:latest`.
    pub fn familiar(&self) -> String {
        self.with_suffix(self.familiar_repository())
    }

    fn with_suffix(&self, mut name: String) -> String {
        if let Some(tag) = &self.tag {
            name.push(':');
            name.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            name.push('@');
            name.push_str(&digest.to_string());
        }
        name
    }
}

/// The first component is a registry when it has a `.` or a `:`, is `localhost`, or has
/// uppercase letters (which repository paths may not).
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => ("", name),
    }
}

fn normalize(domain: &str, path: &str) -> (String, String) {
    let domain = match domain {
        "" | LEGACY_DOMAIN => DEFAULT_DOMAIN,
        d => d,
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path.to_string()
    };
    (domain.to_string(), path)
}

fn check_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = tag.len() <= MAX_TAG_LEN
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {tag:?}: up to {MAX_TAG_LEN} letters, digits, '_', '.' and '-', \
             not starting with '.' or '-'"
        ))
    }
}

fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Ok(());
    }
    let bad = || Err(format!("invalid registry {domain:?}"));
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return bad();
        };
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return bad();
        }
        (
            None,
            after
                .strip_prefix(':')
                .or(Some(after).filter(|a| !a.is_empty())),
        )
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_some_and(|h| !h.split('.').all(label_ok)) {
        return bad();
    }
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return bad();
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository name is empty".into());
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("repository name ({path}) must be lowercase"));
    }
    for component in path.split('/') {
        if !component_ok(component) {
            return Err(format!(
                "invalid repository name component {component:?}: lowercase letters and \
                 digits, separated by '.', '_', '__' or dashes"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn component_ok(c: &str) -> bool {
    let alnum = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit();
    if !c.starts_with(alnum) || !c.ends_with(alnum) {
        return false;
    }
    c.split(alnum)
        .filter(|sep| !sep.is_empty())
        .all(|sep| matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-'))
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_suffix(self.repository()))
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Reference, ImageError> {
        Reference::parse(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Reference, D::Error> {
        let text = String::deserialize(d)?;
        Reference::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
