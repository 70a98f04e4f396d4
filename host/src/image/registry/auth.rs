//! Registry credentials, kept where the docker CLI keeps them: `$DOCKER_CONFIG/config.json`
//! (else `~/.docker/config.json`), its `auths`, `credsStore` and `credHelpers`; and the
//! `X-Registry-Auth` header the docker CLI and docker-py send with each pull and push.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::RegistryError;
use crate::image::DEFAULT_DOMAIN;

/// The key Docker Hub's credentials go under in `config.json`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// What a registry is shown to be by.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// A bearer token for the registry itself (`registrytoken`).
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::Token(_) => write!(f, "Token(***)"),
        }
    }
}

impl Credentials {
    pub(crate) fn to_oci(&self) -> oci_client::secrets::RegistryAuth {
        use oci_client::secrets::RegistryAuth;
        match self {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::Token(t) => RegistryAuth::Bearer(t.clone()),
        }
    }

    /// The `X-Registry-Auth` header: base64url JSON (padded or not, as clients vary).
    /// An empty or `{}` header is anonymous; `None` means the header said nothing.
    pub fn from_header(value: &str) -> Result<Option<Credentials>, RegistryError> {
        #[derive(Deserialize, Default)]
        struct Header {
            #[serde(default)]
            username: String,
            #[serde(default)]
            password: String,
            #[serde(default)]
            auth: String,
            #[serde(default, rename = "identitytoken")]
            identity_token: String,
            #[serde(default, rename = "registrytoken")]
            registry_token: String,
        }
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let bad = |e: String| RegistryError::Invalid(format!("X-Registry-Auth: {e}"));
        let trimmed = value.trim_end_matches('=');
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|e| bad(e.to_string()))?;
        let h: Header = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if !h.registry_token.is_empty() {
            return Ok(Some(Credentials::Token(h.registry_token)));
        }
        if !h.identity_token.is_empty() {
            return Err(bad(
                "identity tokens (OAuth refresh tokens) are not supported: log in with a \
                 username and password"
                    .into(),
            ));
        }
        if !h.username.is_empty() {
            return Ok(Some(Credentials::Basic {
                username: h.username,
                password: h.password,
            }));
        }
        if !h.auth.is_empty() {
            return decode_auth(&h.auth).map(Some).map_err(bad);
        }
        Ok(None)
    }

    /// The `auth` field clients send: base64 of `user:password`.
    pub fn from_header_auth(auth: &str) -> Result<Credentials, RegistryError> {
        decode_auth(auth).map_err(RegistryError::Invalid)
    }

    /// The credentials the docker CLI's config holds for `domain` (anonymous when none):
    /// its `credHelpers`, `credsStore` or `auths`, read by the `docker_credential` crate.
    pub fn from_config(domain: &str) -> Result<Credentials, RegistryError> {
        use docker_credential::{CredentialRetrievalError as E, DockerCredential};
        let key = config_key(domain);
        match docker_credential::get_credential(&key) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                Ok(Credentials::Basic { username, password })
            }
            Ok(DockerCredential::IdentityToken(_)) => Err(RegistryError::Invalid(format!(
                "{}: the credentials for {key} are an identity token (an OAuth refresh \
                 token), which berth does not support: log in with a username and password",
                config_path().display()
            ))),
            Err(E::NoCredentialConfigured | E::ConfigNotFound | E::ConfigReadError) => {
                Ok(Credentials::Anonymous)
            }
            // Helpers answer "credentials not found" with a failure: that is anonymous.
            Err(E::HelperFailure { stdout, stderr, .. })
                if stdout.contains("not found") || stderr.contains("not found") =>
            {
                Ok(Credentials::Anonymous)
            }
            Err(e) => Err(RegistryError::Config(format!(
                "{}: credentials for {key}: {e}",
                config_path().display()
            ))),
        }
    }
}

/// `user:password`, base64.
fn decode_auth(auth: &str) -> Result<Credentials, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| format!("auth is not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "auth is not UTF-8".to_string())?;
    let (username, password) = text
        .split_once(':')
        .ok_or_else(|| "auth is not user:password".to_string())?;
    Ok(Credentials::Basic {
        username: username.into(),
        password: password.into(),
    })
}

/// The `config.json` key of a registry, as the docker CLI writes it.
pub fn config_key(domain: &str) -> String {
    if domain == DEFAULT_DOMAIN || domain == "index.docker.io" || domain == "registry-1.docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        domain.to_string()
    }
}

/// The registry a login's server address names: `https://host/`, `host/v1/`, `host` as
/// typed; Docker Hub's addresses (and an empty one) are `docker.io`.
pub fn server_domain(server: &str) -> String {
    let s = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let s = s
        .strip_suffix("/v1")
        .or_else(|| s.strip_suffix("/v2"))
        .unwrap_or(s);
    match s {
        "" | "index.docker.io" | "registry-1.docker.io" => DEFAULT_DOMAIN.to_string(),
        other => other.to_string(),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn config_path() -> PathBuf {
    let dir = match std::env::var_os("DOCKER_CONFIG") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => dirs::home_dir().unwrap_or_default().join(".docker"),
    };
    dir.join("config.json")
}

fn read_config() -> Result<Value, RegistryError> {
    let path = config_path();
    match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Value::Null),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Config(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Null),
        Err(e) => Err(RegistryError::Config(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn write_config(config: &Value) -> Result<(), RegistryError> {
    let path = config_path();
    let failed =
        |e: std::io::Error| RegistryError::Config(format!("cannot write {}: {e}", path.display()));
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(failed)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".config-")
        .tempfile_in(dir)
        .map_err(failed)?;
    let mut bytes = serde_json::to_vec_pretty(config).unwrap_or_default();
    bytes.push(b'\n');
    tmp.write_all(&bytes).map_err(failed)?;
    tmp.as_file().sync_all().map_err(failed)?;
    tmp.persist(&path).map_err(|e| failed(e.error))?;
    Ok(())
}

/// Keeps `username`/`password` for `domain` as the docker CLI does: in the credential
/// helper the config names, else base64 in `auths`. Returns where they went.
pub fn save(domain: &str, username: &str, password: &str) -> Result<String, RegistryError> {
    let key = config_key(domain);
    let mut config = read_config()?;
    if !config.is_object() {
        config = json!({});
    }
    let helper = config["credHelpers"][&key]
        .as_str()
        .or_else(|| config["credsStore"].as_str())
        .map(str::to_string);
    if let Some(helper) = helper {
        let input = json!({"ServerURL": key, "Username": username, "Secret": password});
        run_helper(&helper, "store", &input.to_string())?;
        if let Some(auths) = config["auths"].as_object_mut() {
            auths.insert(key.clone(), json!({}));
        } else {
            config["auths"] = json!({ key.clone(): {} });
        }
        write_config(&config)?;
        return Ok(format!("the credential helper docker-credential-{helper}"));
    }
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    if !config["auths"].is_object() {
        config["auths"] = json!({});
    }
    config["auths"][&key] = json!({ "auth": auth });
    write_config(&config)?;
    Ok(config_path().display().to_string())
}

/// Forgets the credentials of `domain`; whether there were any.
pub fn remove(domain: &str) -> Result<bool, RegistryError> {
    let key = config_key(domain);
    let mut config = read_config()?;
    let had = config["auths"]
        .as_object_mut()
        .and_then(|a| a.remove(&key))
        .is_some();
    let helper = config["credHelpers"][&key]
        .as_str()
        .or_else(|| config["credsStore"].as_str())
        .map(str::to_string);
    if let Some(helper) = helper {
        let _ = run_helper(&helper, "erase", &key);
    }
    if had {
        write_config(&config)?;
    }
    Ok(had)
}

fn run_helper(helper: &str, verb: &str, input: &str) -> Result<String, RegistryError> {
    let program = format!("docker-credential-{helper}");
    let failed = |output: String| RegistryError::Helper {
        helper: helper.to_string(),
        output,
    };
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(text)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(failed(format!("{text} {}", err.trim()).trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64url(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE.encode(v.to_string())
    }

    #[test]
    fn the_header_carries_basic_credentials_or_nothing() {
        let basic = Credentials::from_header(&b64url(
            &json!({"username": "u", "password": "p+/?", "serveraddress": "localhost:5000"}),
        ))
        .unwrap();
        assert_eq!(
            basic,
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p+/?".into()
            })
        );
        assert_eq!(Credentials::from_header("e30=").unwrap(), None);
        let user_pass = base64::engine::general_purpose::STANDARD.encode("u:p:q");
        let by_auth = Credentials::from_header(&b64url(&json!({ "auth": user_pass }))).unwrap();
        let expected = Credentials::Basic {
            username: "u".into(),
            password: "p:q".into(),
        };
        assert_eq!(by_auth, Some(expected.clone()));
        assert_eq!(Credentials::from_header_auth(&user_pass).unwrap(), expected);
        assert!(Credentials::from_header_auth("bm9jb2xvbg==").is_err());
        assert_eq!(Credentials::from_header("").unwrap(), None);
        let token = Credentials::from_header(&b64url(&json!({"registrytoken": "t"}))).unwrap();
        assert_eq!(token, Some(Credentials::Token("t".into())));
        let err = Credentials::from_header(&b64url(&json!({"identitytoken": "x"}))).unwrap_err();
        assert!(err.to_string().contains("identity tokens"), "{err}");
        assert!(Credentials::from_header("!!!").is_err());
    }

    #[test]
    fn docker_hub_has_the_cli_key() {
        assert_eq!(config_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(config_key("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn credentials_never_print() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }
}
