//! Registries: pulling images into the store, pushing them, and logging in. The
//! distribution protocol (bearer-token and basic auth, manifests, ranged blob reads, blob
//! uploads) is the `oci-client` crate's; what berth adds is the store around it: platform
//! choice, verified and resumable layer downloads, one download per blob at a time across
//! processes, and Docker's progress messages.

mod auth;
/// Where credentials are kept: `save` and `remove` in the docker CLI's config.
pub mod auth_store {
    pub use super::auth::{remove, save};
}
mod login;
mod platform;
mod progress;
mod pull;
mod push;
mod settings;

use std::time::Duration;

pub use auth::{config_key, config_path, server_domain, Credentials};
pub use login::{credentials, login};
pub use platform::Platform;
pub use progress::{Event, LayerState, Progress, Silent};
pub use pull::{distribution, pull, resolve, PullOptions, Pulled, Resolved};
pub use push::{push, Pushed};
pub use settings::{Endpoint, Settings};

use super::ImageError;

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a registry may send nothing while it owes us data.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Every way talking to a registry can fail, each with the words Docker uses.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("manifest for {reference} not found: manifest unknown")]
    ManifestUnknown { reference: String },
    #[error(
        "pull access denied for {repository}, repository does not exist or may require \
         'docker login': {detail}"
    )]
    Denied { repository: String, detail: String },
    #[error("unauthorized: {registry}: {detail}")]
    Unauthorized { registry: String, detail: String },
    #[error("cannot reach the registry {registry}: {detail}")]
    Unreachable { registry: String, detail: String },
    #[error("no matching manifest for {wanted} in the manifest list entries (it has: {found})")]
    NoPlatform { wanted: String, found: String },
    #[error(
        "image with reference {reference} was found but does not match the platform: \
         wanted {wanted}, actual: {actual}"
    )]
    WrongPlatform {
        reference: String,
        wanted: String,
        actual: String,
    },
    #[error("{registry}: {what}: {detail}")]
    Protocol {
        registry: String,
        what: String,
        detail: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("registry settings: {0}")]
    Config(String),
    #[error("docker-credential-{helper}: {output}")]
    Helper { helper: String, output: String },
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl RegistryError {
    /// The HTTP status the API answers this error with, as Docker's.
    pub fn status(&self) -> u16 {
        match self {
            RegistryError::ManifestUnknown { .. }
            | RegistryError::Denied { .. }
            | RegistryError::NoPlatform { .. } => 404,
            RegistryError::Unauthorized { .. } => 401,
            RegistryError::Invalid(_)
            | RegistryError::Config(_)
            | RegistryError::WrongPlatform { .. }
            | RegistryError::Unsupported(_) => 400,
            _ => 500,
        }
    }
}

/// A client for one registry endpoint.
pub(crate) fn client(endpoint: &Endpoint, settings: &Settings) -> oci_client::Client {
    use oci_client::client::{ClientConfig, ClientProtocol};
    let protocol = if endpoint.insecure {
        ClientProtocol::HttpsExcept(vec![endpoint.host.clone()])
    } else {
        ClientProtocol::Https
    };
    oci_client::Client::new(ClientConfig {
        protocol,
        platform_resolver: None,
        use_monolithic_push: true,
        max_concurrent_download: settings.max_downloads(),
        max_concurrent_upload: settings.max_uploads(),
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    })
}

/// The oci-client reference for `path` (`library/busybox`) at `endpoint`, by tag or digest.
pub(crate) fn oci_reference(
    endpoint: &Endpoint,
    domain: &str,
    path: &str,
    tag: Option<&str>,
    digest: Option<&str>,
) -> oci_client::Reference {
    // Docker Hub's API lives at registry-1.docker.io.
    let registry = match domain {
        super::DEFAULT_DOMAIN if !endpoint.mirror => "registry-1.docker.io".to_string(),
        _ if endpoint.mirror => endpoint.host.clone(),
        _ => domain.to_string(),
    };
    match (digest, tag) {
        (Some(d), _) => oci_client::Reference::with_digest(registry, path.into(), d.into()),
        (None, t) => {
            oci_client::Reference::with_tag(registry, path.into(), t.unwrap_or("latest").into())
        }
    }
}

/// Maps oci-client's error to ours, naming what was being done.
pub(crate) fn classify(
    e: oci_client::errors::OciDistributionError,
    registry: &str,
    what: &str,
) -> RegistryError {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode};
    let protocol = |detail: String| RegistryError::Protocol {
        registry: registry.to_string(),
        what: what.to_string(),
        detail,
    };
    match e {
        // A request that could not be built, or an answer that could not be read, is the
        // protocol's fault; everything else (connect, send, a connection that closed or went
        // quiet) is the registry being unreachable.
        E::RequestError(r) if r.is_builder() || r.is_redirect() || r.is_decode() => {
            protocol(crate::error::chain(&r))
        }
        E::RequestError(r) => RegistryError::Unreachable {
            registry: registry.to_string(),
            detail: crate::error::chain(&r),
        },
        E::IoError(io) => RegistryError::Unreachable {
            registry: registry.to_string(),
            detail: io.to_string(),
        },
        E::UnauthorizedError { url } => RegistryError::Unauthorized {
            registry: registry.to_string(),
            detail: format!("{what}: the registry refused the credentials ({url})"),
        },
        E::AuthenticationFailure(reason) => RegistryError::Unauthorized {
            registry: registry.to_string(),
            detail: format!("authentication failed: {}", reason.trim()),
        },
        E::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let text = envelope
                .errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                RegistryError::Unauthorized {
                    registry: registry.to_string(),
                    detail: format!("{what}: {text}"),
                }
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                )
            }) {
                RegistryError::ManifestUnknown {
                    reference: what.to_string(),
                }
            } else {
                protocol(text)
            }
        }
        E::ImageManifestNotFoundError(_) => RegistryError::ManifestUnknown {
            reference: what.to_string(),
        },
        E::ServerError { code: 404, .. } => RegistryError::ManifestUnknown {
            reference: what.to_string(),
        },
        other => protocol(crate::error::chain(&other)),
    }
}
