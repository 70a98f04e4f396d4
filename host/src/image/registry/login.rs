//! `login`: checks credentials against a registry as the docker CLI does. `GET /v2/`
//! answers 200 (no auth needed), or 401 with a challenge: `Basic` is answered with the
//! credentials on `/v2/` itself, `Bearer` by asking the challenge's realm for a token.

use super::{Credentials, RegistryError, Settings, CONNECT_TIMEOUT, READ_TIMEOUT};

/// A `WWW-Authenticate` challenge: its scheme and parameters.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Parses `Bearer realm="https://a/token",service="reg",scope="x"`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut params = Vec::new();
        let mut rest = rest.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=')?;
            let after = after.trim_start();
            let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                match after.find(',') {
                    Some(i) => (&after[..i], &after[i..]),
                    None => (after, ""),
                }
            };
            params.push((key.trim().to_ascii_lowercase(), value.to_string()));
            rest = tail.trim_start().trim_start_matches(',').trim_start();
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Checks `username`/`password` against `domain`; `Ok` when the registry accepts them.
pub async fn login(
    settings: &Settings,
    domain: &str,
    username: &str,
    password: &str,
) -> Result<(), RegistryError> {
    let host = match domain {
        crate::image::DEFAULT_DOMAIN => "registry-1.docker.io",
        other => other,
    };
    let scheme = if settings.is_insecure(host) {
        "http"
    } else {
        "https"
    };
    let unreachable = |e: reqwest::Error| RegistryError::Unreachable {
        registry: domain.to_string(),
        detail: crate::error::chain(&e),
    };
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(unreachable)?;
    let url = format!("{scheme}://{host}/v2/");
    let first = http.get(&url).send().await.map_err(unreachable)?;
    if first.status().is_success() {
        return Ok(());
    }
    let refused = |detail: String| RegistryError::Unauthorized {
        registry: domain.to_string(),
        detail,
    };
    if first.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(RegistryError::Protocol {
            registry: domain.to_string(),
            what: url,
            detail: format!("answered {}", first.status()),
        });
    }
    let challenge = first
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .and_then(Challenge::parse)
        .ok_or_else(|| refused("the registry asked for credentials without a challenge".into()))?;
    let answer = match challenge.scheme.as_str() {
        "basic" => http
            .get(&url)
            .basic_auth(username, Some(password))
            .send()
            .await
            .map_err(unreachable)?,
        "bearer" => {
            let realm = challenge
                .get("realm")
                .ok_or_else(|| refused("the bearer challenge has no realm".into()))?;
            let mut query = vec![("account", username.to_string())];
            if let Some(service) = challenge.get("service") {
                query.push(("service", service.to_string()));
            }
            http.get(realm)
                .query(&query)
                .basic_auth(username, Some(password))
                .send()
                .await
                .map_err(unreachable)?
        }
        other => return Err(refused(format!("unknown auth scheme {other:?}"))),
    };
    if answer.status().is_success() {
        Ok(())
    } else {
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        Err(refused(format!(
            "incorrect username or password ({status}{})",
            if body.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", body.trim())
            }
        )))
    }
}

/// The credentials `login` checked, as the header the docker CLI would send.
pub fn credentials(username: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: username.into(),
        password: password.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_quoted_and_bare_params() {
        let c = Challenge::parse(
            r#"Bearer realm="http://127.0.0.1:5001/token",service="berth-test",scope="repository:x:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.get("realm"), Some("http://127.0.0.1:5001/token"));
        assert_eq!(c.get("service"), Some("berth-test"));
        assert_eq!(c.get("scope"), Some("repository:x:pull"));
        let b = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(b.scheme, "basic");
        assert_eq!(b.get("realm"), Some("Registry Realm"));
        let bare = Challenge::parse("Bearer realm=x, service=y").unwrap();
        assert_eq!(bare.get("service"), Some("y"));
    }
}
