//! The crate's 1.0 table (`src/v1/methods.rs`, `RPC_ERROR_CODES`) against `protocol/jsonrpc.ts`
//! as the build writes it (`PROTOCOL_1` in `dist/protocol/methods.json`, or
//! `$LAYERPIPE_METHODS_JSON`). Any drift fails; without the JSON these tests skip (fail under CI=true).

mod common;

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::PathBuf;

use layerpipe::v1::methods::{
    DEFAULT_STREAM_WINDOW, MAX_MESSAGE_SIZE_1, METHODS_1, TRANSFER_CREDIT, TRANSFER_DATA,
    TRANSFER_END, TRANSFER_METHODS_1, TRANSFER_PROGRESS,
};
use layerpipe::v1::Payload;
use layerpipe::{RpcErrorCode, RPC_ERROR_CODES};
use serde_json::Value;

fn load_protocol_1(test: &str) -> Option<Value> {
    let path = match env::var_os("LAYERPIPE_METHODS_JSON") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dist/protocol/methods.json"),
    };
    let table: Value = match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display())),
        Err(e) => {
            common::skip(
                test,
                &format!("{}: {e} (run `npm run build`)", path.display()),
            );
            return None;
        }
    };
    match table.get("PROTOCOL_1") {
        Some(section) => Some(section.clone()),
        None => {
            common::skip(
                test,
                &format!("{} has no PROTOCOL_1 section", path.display()),
            );
            None
        }
    }
}

#[test]
fn params_match_params_1() {
    let protocol = match load_protocol_1("params_match_params_1") {
        Some(p) => p,
        None => return,
    };
    let theirs = protocol["PARAMS"].as_object().expect("PARAMS is an object");
    let mut drift = Vec::new();
    let ours: Vec<&str> = METHODS_1.iter().map(|m| m.name).collect();
    for name in theirs.keys() {
        if !ours.contains(&name.as_str()) {
            drift.push(format!("{name} is missing here"));
        }
    }
    for method in METHODS_1 {
        let spec = match theirs.get(method.name) {
            Some(spec) => spec.as_object().unwrap(),
            None => {
                drift.push(format!("{} is not in PARAMS_1", method.name));
                continue;
            }
        };
        let here: BTreeMap<String, String> = method
            .params
            .iter()
            .map(|p| {
                let optional = if p.optional { "?" } else { "" };
                (p.name.to_string(), format!("{}{optional}", p.kind.as_str()))
            })
            .collect();
        let there: BTreeMap<String, String> = spec
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        if here != there {
            drift.push(format!(
                "{}: {here:?} here, {there:?} in PARAMS_1",
                method.name
            ));
        }
    }
    let transfer: Vec<&str> = TRANSFER_METHODS_1.iter().map(|m| m.name).collect();
    if protocol["TRANSFER_METHODS"] != serde_json::json!(transfer) {
        drift.push(format!(
            "TRANSFER_METHODS {:?} here, {} there",
            transfer, protocol["TRANSFER_METHODS"]
        ));
    }
    assert!(
        drift.is_empty(),
        "the 1.0 table drifted from protocol/jsonrpc.ts:\n{}",
        drift.join("\n")
    );
}

#[test]
fn error_codes_notifications_and_limits_match() {
    let protocol = match load_protocol_1("error_codes_notifications_and_limits_match") {
        Some(p) => p,
        None => return,
    };
    let codes = protocol["ERROR_CODES"].as_object().unwrap();
    assert_eq!(codes.len(), RPC_ERROR_CODES.len(), "{codes:?}");
    for (code, name, number) in RPC_ERROR_CODES {
        assert_eq!(
            codes.get(*name).and_then(Value::as_i64),
            Some(*number),
            "{name}"
        );
        assert_eq!(RpcErrorCode::from_code(*number), *code);
        assert_eq!(code.code(), *number);
        assert_eq!(code.name(), *name);
    }
    assert_eq!(RpcErrorCode::from_code(-1), RpcErrorCode::Unknown(-1));

    let notifications = &protocol["NOTIFICATIONS"];
    assert_eq!(notifications["TransferData"], TRANSFER_DATA);
    assert_eq!(notifications["TransferEnd"], TRANSFER_END);
    assert_eq!(notifications["TransferCredit"], TRANSFER_CREDIT);
    assert_eq!(notifications["TransferProgress"], TRANSFER_PROGRESS);
    assert_eq!(notifications.as_object().unwrap().len(), 4);

    assert_eq!(
        protocol["MAX_MESSAGE_SIZE"].as_u64(),
        Some(MAX_MESSAGE_SIZE_1 as u64)
    );
    assert_eq!(
        protocol["DEFAULT_STREAM_WINDOW"].as_u64(),
        Some(DEFAULT_STREAM_WINDOW)
    );
    assert!(protocol["PROTOCOL_VERSION"]
        .as_str()
        .unwrap()
        .starts_with("1."));
    let kinds: Vec<&str> = protocol["PAYLOAD_KINDS"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for kind in &kinds {
        assert!(
            Payload::from_wire(kind).is_some(),
            "payload {kind} unknown here"
        );
    }
    assert_eq!(kinds.len(), 3);
}
