//! Errors of API calls: an HTTP status and Docker's `{"message": ...}` body.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(400, m)
    }

    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(404, m)
    }

    pub fn forbidden(m: impl Into<String>) -> ApiError {
        ApiError::new(403, m)
    }

    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(409, m)
    }

    pub fn internal(m: impl Into<String>) -> ApiError {
        ApiError::new(500, m)
    }

    /// Docker answers 304 when the container is already in the asked-for state.
    pub fn not_modified() -> ApiError {
        ApiError::new(304, "")
    }

    pub fn no_such_container(name: &str) -> ApiError {
        ApiError::not_found(format!("No such container: {name}"))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for ApiError {}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl From<crate::client::ClientError> for ApiError {
    fn from(e: crate::client::ClientError) -> Self {
        ApiError::internal(format!("guest agent: {}", crate::error::chain(&e)))
    }
}

impl From<crate::image::ImageError> for ApiError {
    fn from(e: crate::image::ImageError) -> Self {
        ApiError::internal(crate::error::chain(&e))
    }
}
