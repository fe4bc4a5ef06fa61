//! The shapes 1.0 results take, as this crate hands them over.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How transfer bytes travel (`PAYLOAD_KINDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payload {
    /// A pipe read end on the response packet.
    Fd,
    /// A FIFO path in the server's private directory.
    Fifo,
    /// `transfer/data` notifications under a credit window.
    Stream,
}

impl Payload {
    pub fn as_str(self) -> &'static str {
        match self {
            Payload::Fd => "fd",
            Payload::Fifo => "fifo",
            Payload::Stream => "stream",
        }
    }

    pub fn from_wire(name: &str) -> Option<Payload> {
        [Payload::Fd, Payload::Fifo, Payload::Stream]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

/// Options of a 1.0 connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The payload kinds we accept, preferred first (Initialize's `payloads`).
    pub payloads: Vec<Payload>,
    /// The in-band window to ask for (stream payloads); `None`: the server's default.
    pub window: Option<u64>,
    /// A request (other than FinishTransfer) unanswered this long is cancelled with
    /// `$/cancelRequest` and fails with [`RpcErrorCode::Cancelled`](crate::RpcErrorCode):
    /// a stalled registry cannot block a caller forever. `None`: wait as long as it takes.
    pub timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            payloads: vec![Payload::Fd],
            window: None,
            timeout: None,
        }
    }
}

/// What Initialize answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// E.g. "1.0.0".
    pub protocol_version: String,
    pub name: String,
    pub version: String,
    /// The methods the server implements.
    pub methods: Vec<String>,
    /// The payload kind chosen for this connection.
    pub payload: Payload,
    /// The in-band window granted (stream payloads).
    pub window: u64,
}

/// An image opened over 1.0; close it with `ImageProxy::close_image`.
#[derive(Debug, PartialEq, Eq)]
pub struct OpenedImage(pub(crate) u64);

impl OpenedImage {
    /// The server's id for the image.
    pub fn id(&self) -> u64 {
        self.0
    }
}

/// A manifest or index with its digest and media type, as exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub data: Vec<u8>,
}

/// An OS and architecture, as image indexes name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// One instance of a multi-platform image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub platform: Option<Platform>,
}

/// The image configuration's bytes and digest (GetFullConfig).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullConfig {
    pub digest: String,
    pub data: Vec<u8>,
}
