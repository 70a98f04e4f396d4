//! Typed Docker Engine API models at the daemon's edge: the routes parse request bodies
//! into these, and the engine works with them, never with untyped JSON. Each struct names
//! the fields berth honours; whatever else a client sends lands in the struct's `other`
//! map, which [`crate::daemon::fields`] requires to hold zero values.

pub mod create;
pub mod exec;
pub mod network;
pub mod update;

pub use create::{
    ContainerConfig, CreateBody, EndpointSettings, HealthConfig, HostConfig, RestartPolicy,
};

use super::error::ApiError;

/// Parses a JSON body into a model; an empty body is the model's default, and a field of
/// the wrong type is named in the error.
pub fn parse<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON at {}: {}", e.path(), e.inner())))
}
