//! JSON-RPC 2.0 messages as they travel in one SEQPACKET packet each: requests and
//! notifications we send, responses and notifications we receive.

use serde_json::{json, Map, Value};

use crate::error::{Error, ErrorCode, RpcErrorCode};

/// A JSON-RPC error object (in a response, or in `transfer/end`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcFailure {
    pub code: i64,
    pub message: String,
    pub error_code: Option<String>,
    pub kind: Option<String>,
}

impl RpcFailure {
    pub(crate) fn from_value(value: &Value) -> Option<RpcFailure> {
        let object = value.as_object()?;
        let data = object.get("data");
        let data_string = |key: &str| {
            data.and_then(|d| d.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Some(RpcFailure {
            code: object.get("code")?.as_i64()?,
            message: object
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            error_code: data_string("error_code"),
            kind: data_string("kind"),
        })
    }

    /// This failure as the crate's error, for the request `method`.
    pub(crate) fn into_error(self, method: &str) -> Error {
        Error::Rpc {
            method: method.to_string(),
            code: RpcErrorCode::from_code(self.code),
            message: self.message,
            error_code: ErrorCode::from_wire(self.error_code.as_deref().unwrap_or("")),
            kind: self.kind,
        }
    }
}

/// One message from the server.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    Response {
        id: u64,
        outcome: Result<Value, RpcFailure>,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// A response we cannot route (id null: the server could not read one of our requests).
    Unroutable(RpcFailure),
}

/// A request: `{"jsonrpc":"2.0","id":N,"method":M,"params":{...}}`.
pub(crate) fn encode_request(id: u64, method: &str, params: Map<String, Value>) -> Vec<u8> {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
        .to_string()
        .into_bytes()
}

/// A notification: no id, no answer.
pub(crate) fn encode_notification(method: &str, params: Map<String, Value>) -> Vec<u8> {
    json!({ "jsonrpc": "2.0", "method": method, "params": params })
        .to_string()
        .into_bytes()
}

/// Reads one packet from the server.
pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Incoming, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("a packet is not JSON: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| format!("a packet is not a JSON-RPC object: {value}"))?;
    if object.contains_key("success") && object.contains_key("pipeid") {
        return Err(format!(
            "the server answered in protocol 0.2.x: it does not speak 1.0 ({value})"
        ));
    }
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(format!("a packet is not JSON-RPC 2.0: {value}"));
    }
    if let Some(method) = object.get("method").and_then(Value::as_str) {
        if object.contains_key("id") {
            return Err(format!(
                "the server sent a request ({method}), which 1.0 never does"
            ));
        }
        return Ok(Incoming::Notification {
            method: method.to_string(),
            params: object.get("params").cloned().unwrap_or(Value::Null),
        });
    }
    let outcome = match (object.get("result"), object.get("error")) {
        (Some(result), None) => Ok(result.clone()),
        (None, Some(error)) => Err(RpcFailure::from_value(error)
            .ok_or_else(|| format!("malformed error object: {error}"))?),
        _ => {
            return Err(format!(
                "a response needs exactly one of result and error: {value}"
            ))
        }
    };
    match object.get("id") {
        Some(Value::Null) => match outcome {
            Err(failure) => Ok(Incoming::Unroutable(failure)),
            Ok(_) => Err(format!("a result without an id: {value}")),
        },
        Some(id) => match id.as_u64() {
            Some(id) => Ok(Incoming::Response { id, outcome }),
            None => Err(format!("a response id we never sent: {id}")),
        },
        None => Err(format!("a response without an id: {value}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_requests_and_notifications_with_named_params() {
        let mut params = Map::new();
        params.insert("image".into(), json!(3));
        let request: Value =
            serde_json::from_slice(&encode_request(7, "GetConfig", params.clone())).unwrap();
        assert_eq!(
            request,
            json!({"jsonrpc": "2.0", "id": 7, "method": "GetConfig", "params": {"image": 3}})
        );
        let note: Value =
            serde_json::from_slice(&encode_notification("transfer/credit", params)).unwrap();
        assert_eq!(
            note,
            json!({"jsonrpc": "2.0", "method": "transfer/credit", "params": {"image": 3}})
        );
        assert!(note.get("id").is_none());
    }

    #[test]
    fn decodes_results_errors_and_notifications() {
        assert_eq!(
            decode(br#"{"jsonrpc":"2.0","id":5,"result":null}"#).unwrap(),
            Incoming::Response {
                id: 5,
                outcome: Ok(Value::Null)
            }
        );
        let error = decode(
            br#"{"jsonrpc":"2.0","id":9,"error":{"code":-32004,"message":"digest mismatch","data":{"error_code":"other","kind":"LP_ERR_DIGEST_MISMATCH"}}}"#,
        )
        .unwrap();
        let failure = match error {
            Incoming::Response {
                id: 9,
                outcome: Err(failure),
            } => failure,
            other => panic!("{other:?}"),
        };
        let err = failure.into_error("FinishTransfer");
        assert_eq!(err.rpc_code(), Some(RpcErrorCode::VerificationFailed));
        assert_eq!(err.error_code(), Some(ErrorCode::Other));
        assert!(matches!(&err, Error::Rpc { kind: Some(k), .. } if k == "LP_ERR_DIGEST_MISMATCH"));
        assert_eq!(
            err.to_string(),
            "FinishTransfer failed (VerificationFailed -32004): digest mismatch"
        );

        let retry = decode(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32003,"message":"x","data":{"error_code":"retryable"}}}"#).unwrap();
        match retry {
            Incoming::Response {
                outcome: Err(f), ..
            } => assert!(f.into_error("OpenImage").is_retryable()),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode(br#"{"jsonrpc":"2.0","method":"transfer/end","params":{"transfer":2}}"#)
                .unwrap(),
            Incoming::Notification {
                method: "transfer/end".into(),
                params: json!({"transfer": 2})
            }
        );
        assert!(matches!(
            decode(
                br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#
            )
            .unwrap(),
            Incoming::Unroutable(RpcFailure { code: -32700, .. })
        ));
        let unknown =
            decode(br#"{"jsonrpc":"2.0","id":2,"error":{"code":-31000,"message":"new"}}"#).unwrap();
        match unknown {
            Incoming::Response {
                outcome: Err(f), ..
            } => {
                let err = f.into_error("X");
                assert_eq!(err.rpc_code(), Some(RpcErrorCode::Unknown(-31000)));
                assert_eq!(err.error_code(), Some(ErrorCode::Other));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_what_is_not_a_json_rpc_message_from_a_server() {
        for bad in [
            &b"not json"[..],
            br#"[{"jsonrpc":"2.0","id":1,"result":null}]"#,
            br#"{"id":1,"result":null}"#,
            br#"{"jsonrpc":"2.0","id":1}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":""}}"#,
            br#"{"jsonrpc":"2.0","id":"a","result":1}"#,
            br#"{"jsonrpc":"2.0","id":4,"method":"Ask","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"error":{"message":"no code"}}"#,
        ] {
            assert!(
                decode(bad).is_err(),
                "{} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
