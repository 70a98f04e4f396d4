//! The wire protocol between the berth host and `berth-init` in the guest.
//!
//! Everything here is plain data: typed messages and their framing. No IO happens in this
//! crate (an architecture invariant), so it builds for every host OS and is tested alone.
//!
//! The byte stream between host and guest (a vsock connection or a virtio-serial port) is
//! multiplexed into streams (see the `berth-mux` crate). Every stream the host opens starts
//! with one [`StreamOpen`] frame that says what the stream carries:
//! - [`StreamOpen::Control`]: the host sends [`HostMessage`]s, the guest answers with
//!   [`GuestMessage`]s. The first message must be [`HostMessage::Hello`].
//! - [`StreamOpen::Stdio`]: raw bytes of one standard stream of one process; never framed,
//!   so bulk output never waits behind control messages or the other way round.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON.

use serde::{de::DeserializeOwned, Serialize};

pub mod boot;
pub mod kernel;
mod message;
pub use message::*;

/// The protocol version this build speaks. The guest refuses a `Hello` with another one.
pub const VERSION: u32 = 1;
/// The AF_VSOCK port `berth-init` listens on.
pub const VSOCK_PORT: u32 = 1024;
/// The name of the virtio-serial port `berth-init` serves on.
pub const SERIAL_PORT_NAME: &str = "berth.0";
/// The largest frame either side accepts; anything larger is a protocol error.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;
/// The cgroup controllers a machine's agent enables for containers at boot (written to
/// `cgroup.subtree_control`); the bench's crun yardstick enables the same.
pub const CGROUP_CONTROLLERS: &str = "+cpu +cpuset +io +memory +pids";

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLarge(usize),
    #[error("malformed message")]
    Malformed(#[source] serde_json::Error),
}

/// Encodes one message as a frame: length header, then JSON.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg).map_err(FrameError::Malformed)?;
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads a frame header and returns the body length it announces.
pub fn decode_header(header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Decodes a frame body (the bytes after the header).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(FrameError::Malformed)
}

/// Incremental decoder: push bytes as they arrive, take whole messages out.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Returns the next whole message, `Ok(None)` when more bytes are needed.
    /// After an error the decoder is unusable: the stream is out of sync.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.buf[..HEADER_LEN]);
        let len = decode_header(header)?;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let msg = decode_body(&self.buf[HEADER_LEN..HEADER_LEN + len]);
        self.buf.drain(..HEADER_LEN + len);
        msg.map(Some)
    }
}

#[cfg(test)]
mod tests;
