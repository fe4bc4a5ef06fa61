//! The wire's methods as this crate calls them: argument kinds, what travels beside the
//! reply, and the protocol version that introduced each. Mirrors `protocol/methods.ts`;
//! every request goes through this table, and `tests/methods.rs` compares it with the JSON
//! the build emits from that file (`dist/protocol/methods.json`).

use serde_json::Value;

use crate::error::{Error, Result};
use crate::version::ProtocolVersion;

/// Largest request packet the proxy reads.
pub const MAX_MESSAGE_SIZE: usize = 32 * 1024;
/// Integer arguments above this are refused by the proxy (JavaScript's safe range).
pub const MAX_JSON_INTEGER: u64 = (1 << 53) - 1;
/// OpenImageOptional's image id when the image does not exist.
pub const SENTINEL_IMAGE_ID: u64 = 0;

/// The kind of one positional argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A JSON string.
    String,
    /// A non-negative JSON integer no larger than [`MAX_JSON_INTEGER`].
    Uint,
}

impl ArgKind {
    /// The name `protocol/methods.ts` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ArgKind::String => "string",
            ArgKind::Uint => "uint",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            ArgKind::String => value.is_string(),
            ArgKind::Uint => value.as_u64().map_or(false, |n| n <= MAX_JSON_INTEGER),
        }
    }
}

/// What travels beside a successful reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// pipeid 0, no fd.
    None,
    /// One read end and a non-zero pipeid for FinishPipe.
    Pipe,
    /// Two read ends (data, then error) and pipeid 0; no FinishPipe.
    DataAndErrorPipes,
    /// No reply at all (Shutdown).
    NoReply,
}

impl DataKind {
    /// The name `protocol/methods.ts` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::None => "none",
            DataKind::Pipe => "pipe",
            DataKind::DataAndErrorPipes => "dataAndErrorPipes",
            DataKind::NoReply => "noReply",
        }
    }

    /// Descriptors a successful reply carries, and whether its pipeid is non-zero.
    pub fn expected_fds(self) -> (usize, bool) {
        match self {
            DataKind::None | DataKind::NoReply => (0, false),
            DataKind::Pipe => (1, true),
            DataKind::DataAndErrorPipes => (2, false),
        }
    }
}

/// One method of the wire.
#[derive(Debug, PartialEq, Eq)]
pub struct Method {
    pub name: &'static str,
    pub args: &'static [ArgKind],
    pub data: DataKind,
    /// Protocol version that introduced the method.
    pub since: ProtocolVersion,
}

impl Method {
    /// Refuses, before anything is sent, arguments the proxy would refuse.
    pub(crate) fn check_args(&self, args: &[Value]) -> Result<()> {
        if args.len() == self.args.len() && self.args.iter().zip(args).all(|(k, v)| k.accepts(v)) {
            return Ok(());
        }
        let kinds: Vec<&str> = self.args.iter().map(|k| k.as_str()).collect();
        Err(Error::InvalidArgument(format!(
            "{} takes ({}), not {}",
            self.name,
            kinds.join(", "),
            Value::Array(args.to_vec())
        )))
    }
}

// Short names keep the table below readable.
use ArgKind::{String as S, Uint as U};

pub const INITIALIZE: Method = Method {
    name: "Initialize",
    args: &[],
    data: DataKind::None,
    since: ProtocolVersion::new(0, 2, 1),
};
pub const OPEN_IMAGE: Method = Method {
    name: "OpenImage",
    args: &[S],
    data: DataKind::None,
    since: ProtocolVersion::new(0, 2, 1),
};
pub const OPEN_IMAGE_OPTIONAL: Method = Method {
    name: "OpenImageOptional",
    args: &[S],
    data: DataKind::None,
    since: ProtocolVersion::new(0, 2, 4),
};
pub const CLOSE_IMAGE: Method = Method {
    name: "CloseImage",
    args: &[U],
    data: DataKind::None,
    since: ProtocolVersion::new(0, 2, 1),
};
pub const GET_MANIFEST: Method = Method {
    name: "GetManifest",
    args: &[U],
    data: DataKind::Pipe,
    since: ProtocolVersion::new(0, 2, 1),
};
pub const GET_FULL_CONFIG: Method = Method {
    name: "GetFullConfig",
    args: &[U],
    data: DataKind::Pipe,
    since: ProtocolVersion::new(0, 2, 3),
};
pub const GET_CONFIG: Method = Method {
    name: "GetConfig",
    args: &[U],
    data: DataKind::Pipe,
    since: ProtocolVersion::new(0, 2, 1),
};
pub const GET_BLOB: Method = Method {
    name: "GetBlob",
    args: &[U, S, U],
    data: DataKind::Pipe,
    since: ProtocolVersion::new(0, 2, 1),
};
pub const GET_RAW_BLOB: Method = Method {
    name: "GetRawBlob",
    args: &[U, S],
    data: DataKind::DataAndErrorPipes,
    since: ProtocolVersion::new(0, 2, 8),
};
pub const GET_LAYER_INFO: Method = Method {
    name: "GetLayerInfo",
    args: &[U],
    data: DataKind::None,
    since: ProtocolVersion::new(0, 2, 5),
};
pub const GET_LAYER_INFO_PIPED: Method = Method {
    name: "GetLayerInfoPiped",
    args: &[U],
    data: DataKind::Pipe,
    since: ProtocolVersion::new(0, 2, 7),
};
pub const FINISH_PIPE: Method = Method {
    name: "FinishPipe",
    args: &[U],
    data: DataKind::None,
    since: ProtocolVersion::new(0, 2, 1),
};
pub const SHUTDOWN: Method = Method {
    name: "Shutdown",
    args: &[],
    data: DataKind::NoReply,
    since: ProtocolVersion::new(0, 2, 1),
};

/// Every method, in the order of `protocol/methods.ts`.
pub const METHODS: &[&Method] = &[
    &INITIALIZE,
    &OPEN_IMAGE,
    &OPEN_IMAGE_OPTIONAL,
    &CLOSE_IMAGE,
    &GET_MANIFEST,
    &GET_FULL_CONFIG,
    &GET_CONFIG,
    &GET_BLOB,
    &GET_RAW_BLOB,
    &GET_LAYER_INFO,
    &GET_LAYER_INFO_PIPED,
    &FINISH_PIPE,
    &SHUTDOWN,
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_argument_counts_and_kinds() {
        assert!(GET_BLOB
            .check_args(&[json!(1), json!("sha256:x"), json!(0)])
            .is_ok());
        for bad in [
            vec![json!(1), json!("sha256:x")],
            vec![json!("1"), json!("sha256:x"), json!(0)],
            vec![json!(1), json!("d"), json!(-1)],
            vec![json!(1), json!("d"), json!(1u64 << 53)],
            vec![json!(1), json!("d"), json!(1.5)],
        ] {
            assert!(
                matches!(GET_BLOB.check_args(&bad), Err(Error::InvalidArgument(_))),
                "{bad:?} accepted"
            );
        }
        assert!(INITIALIZE.check_args(&[]).is_ok());
        assert!(INITIALIZE.check_args(&[json!(1)]).is_err());
    }
}
