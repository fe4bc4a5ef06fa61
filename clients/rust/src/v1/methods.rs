//! Protocol 1.0's requests as this crate sends them: names and parameter kinds, mirroring
//! `PARAMS_1` in `protocol/jsonrpc.ts` (`tests/protocol_1.rs` compares the two). Every request
//! is checked against this table before it is sent.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::methods::MAX_JSON_INTEGER;

/// Largest JSON-RPC message either side sends or accepts (`MAX_MESSAGE_SIZE_1`).
pub const MAX_MESSAGE_SIZE_1: usize = 1024 * 1024;
/// The in-band window a stream transfer starts with (`DEFAULT_STREAM_WINDOW`).
pub const DEFAULT_STREAM_WINDOW: u64 = 1024 * 1024;
/// What Initialize asks for.
pub const REQUESTED_PROTOCOL_VERSION: &str = "1.0";

/// The kind of one named parameter (`ParamKind` in `protocol/jsonrpc.ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    String,
    /// A non-negative safe integer.
    Uint,
    /// Any safe integer.
    Int,
    Boolean,
    /// `{os, architecture, variant?}` of strings.
    Platform,
    /// A list of payload kinds.
    Payloads,
}

impl ParamKind {
    /// The name `protocol/jsonrpc.ts` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::String => "string",
            ParamKind::Uint => "uint",
            ParamKind::Int => "int",
            ParamKind::Boolean => "boolean",
            ParamKind::Platform => "platform",
            ParamKind::Payloads => "payloads",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        let safe = |n: i64| n.unsigned_abs() <= MAX_JSON_INTEGER;
        match self {
            ParamKind::String => value.is_string(),
            ParamKind::Uint => value.as_u64().map_or(false, |n| n <= MAX_JSON_INTEGER),
            ParamKind::Int => value.as_i64().map_or(false, safe),
            ParamKind::Boolean => value.is_boolean(),
            ParamKind::Platform => value.as_object().map_or(false, |platform| {
                let string = |key: &str| platform.get(key).map_or(false, Value::is_string);
                string("os")
                    && string("architecture")
                    && platform.get("variant").map_or(true, Value::is_string)
                    && platform
                        .keys()
                        .all(|k| matches!(k.as_str(), "os" | "architecture" | "variant"))
            }),
            ParamKind::Payloads => value.as_array().map_or(false, |kinds| {
                kinds
                    .iter()
                    .all(|k| matches!(k.as_str(), Some("fd" | "fifo" | "stream")))
            }),
        }
    }
}

/// One named parameter.
#[derive(Debug, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    pub optional: bool,
}

/// One 1.0 request.
#[derive(Debug, PartialEq, Eq)]
pub struct Method1 {
    pub name: &'static str,
    pub params: &'static [Param],
}

impl Method1 {
    /// Refuses, before anything is sent, params the server would refuse with -32602.
    pub(crate) fn check_params(&self, params: &Map<String, Value>) -> Result<()> {
        for (name, value) in params {
            match self.params.iter().find(|p| p.name == name) {
                Some(param) if param.kind.accepts(value) => {}
                Some(param) => {
                    return Err(Error::InvalidArgument(format!(
                        "{}: {name} must be a {}, not {value}",
                        self.name,
                        param.kind.as_str()
                    )))
                }
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "{} has no parameter {name}",
                        self.name
                    )))
                }
            }
        }
        match self
            .params
            .iter()
            .find(|p| !p.optional && !params.contains_key(p.name))
        {
            Some(missing) => Err(Error::InvalidArgument(format!(
                "{} needs {}",
                self.name, missing.name
            ))),
            None => Ok(()),
        }
    }
}

const fn required(name: &'static str, kind: ParamKind) -> Param {
    Param {
        name,
        kind,
        optional: false,
    }
}

const fn optional(name: &'static str, kind: ParamKind) -> Param {
    Param {
        name,
        kind,
        optional: true,
    }
}

use ParamKind::{Boolean, Int, Payloads, Platform, String as Str, Uint};

const IMAGE: &[Param] = &[required("image", Uint)];
const REFERENCE: &[Param] = &[required("reference", Str)];
const TRANSFER: &[Param] = &[required("transfer", Uint)];

pub const INITIALIZE: Method1 = Method1 {
    name: "Initialize",
    params: &[
        required("protocolVersion", Str),
        optional("payloads", Payloads),
        optional("window", Uint),
    ],
};
pub const OPEN_IMAGE: Method1 = Method1 {
    name: "OpenImage",
    params: REFERENCE,
};
pub const OPEN_IMAGE_OPTIONAL: Method1 = Method1 {
    name: "OpenImageOptional",
    params: REFERENCE,
};
pub const CLOSE_IMAGE: Method1 = Method1 {
    name: "CloseImage",
    params: IMAGE,
};
pub const GET_MANIFEST: Method1 = Method1 {
    name: "GetManifest",
    params: &[
        required("image", Uint),
        optional("raw", Boolean),
        optional("platform", Platform),
    ],
};
pub const LIST_INSTANCES: Method1 = Method1 {
    name: "ListInstances",
    params: IMAGE,
};
pub const LIST_TAGS: Method1 = Method1 {
    name: "ListTags",
    params: REFERENCE,
};
pub const GET_FULL_CONFIG: Method1 = Method1 {
    name: "GetFullConfig",
    params: IMAGE,
};
pub const GET_CONFIG: Method1 = Method1 {
    name: "GetConfig",
    params: IMAGE,
};
pub const GET_LAYER_INFO: Method1 = Method1 {
    name: "GetLayerInfo",
    params: IMAGE,
};
pub const GET_SIGNATURES: Method1 = Method1 {
    name: "GetSignatures",
    params: IMAGE,
};
pub const GET_BLOB: Method1 = Method1 {
    name: "GetBlob",
    params: &[
        required("image", Uint),
        required("digest", Str),
        optional("size", Int),
        optional("progress", Boolean),
    ],
};
pub const GET_RAW_BLOB: Method1 = Method1 {
    name: "GetRawBlob",
    params: &[
        required("image", Uint),
        required("digest", Str),
        optional("offset", Uint),
        optional("length", Uint),
    ],
};
pub const FINISH_TRANSFER: Method1 = Method1 {
    name: "FinishTransfer",
    params: TRANSFER,
};
pub const CANCEL_TRANSFER: Method1 = Method1 {
    name: "CancelTransfer",
    params: TRANSFER,
};
pub const SHUTDOWN: Method1 = Method1 {
    name: "Shutdown",
    params: &[],
};

/// Every 1.0 request, in the order of `Requests1`.
pub const METHODS_1: &[&Method1] = &[
    &INITIALIZE,
    &OPEN_IMAGE,
    &OPEN_IMAGE_OPTIONAL,
    &CLOSE_IMAGE,
    &GET_MANIFEST,
    &LIST_INSTANCES,
    &LIST_TAGS,
    &GET_FULL_CONFIG,
    &GET_CONFIG,
    &GET_LAYER_INFO,
    &GET_SIGNATURES,
    &GET_BLOB,
    &GET_RAW_BLOB,
    &FINISH_TRANSFER,
    &CANCEL_TRANSFER,
    &SHUTDOWN,
];

/// Methods whose result is a transfer (`TRANSFER_METHODS_1`).
pub const TRANSFER_METHODS_1: &[&Method1] = &[&GET_BLOB, &GET_RAW_BLOB];

/// Server-to-client and client-to-server notifications (`Notifications1`).
pub const TRANSFER_DATA: &str = "transfer/data";
pub const TRANSFER_END: &str = "transfer/end";
pub const TRANSFER_CREDIT: &str = "transfer/credit";
pub const TRANSFER_PROGRESS: &str = "transfer/progress";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn checks_names_kinds_and_required_params() {
        let ok = [
            json!({"image": 1, "digest": "sha256:x"}),
            json!({"image": 1, "digest": "d", "size": -1, "progress": true}),
        ];
        for good in ok {
            assert!(
                GET_BLOB.check_params(&params(good.clone())).is_ok(),
                "{good}"
            );
        }
        let bad = [
            json!({"digest": "d"}),
            json!({"image": -1, "digest": "d"}),
            json!({"image": 1, "digest": "d", "size": 1.5}),
            json!({"image": 1, "digest": "d", "size": 1u64 << 53}),
            json!({"image": 1, "digest": "d", "offset": 0}),
            json!({"image": "1", "digest": "d"}),
        ];
        for value in bad {
            assert!(
                matches!(
                    GET_BLOB.check_params(&params(value.clone())),
                    Err(Error::InvalidArgument(_))
                ),
                "{value} accepted"
            );
        }
        let platform =
            |p: Value| GET_MANIFEST.check_params(&params(json!({"image": 1, "platform": p})));
        assert!(platform(json!({"os": "linux", "architecture": "arm64", "variant": "v8"})).is_ok());
        assert!(platform(json!({"os": "linux"})).is_err());
        assert!(platform(json!({"os": "linux", "architecture": "arm64", "cpu": "x"})).is_err());
        assert!(INITIALIZE
            .check_params(&params(
                json!({"protocolVersion": "1.0", "payloads": ["fd", "stream"]})
            ))
            .is_ok());
        assert!(INITIALIZE
            .check_params(&params(
                json!({"protocolVersion": "1.0", "payloads": ["pipe"]})
            ))
            .is_err());
        assert!(SHUTDOWN.check_params(&Map::new()).is_ok());
    }
}
