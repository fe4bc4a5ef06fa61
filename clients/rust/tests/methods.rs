//! The crate's method table (`src/methods.rs`) against the wire's own (`protocol/methods.ts`),
//! which the build writes as JSON (`npm run build` -> `dist/protocol/methods.json`;
//! test/run-all.sh sets `LAYERPIPE_METHODS_JSON`). Any drift fails: a method missing on either
//! side, another since-version, other argument kinds, other descriptors beside the reply.
//! Without the JSON these tests skip, or fail under CI=true.

mod common;

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::PathBuf;

use layerpipe::methods::{MAX_JSON_INTEGER, MAX_MESSAGE_SIZE, SENTINEL_IMAGE_ID};
use layerpipe::{ErrorCode, ProtocolVersion, METHODS, MIN_VERSION, NEXT_INCOMPATIBLE};
use serde_json::Value;

/// The emitted table: $LAYERPIPE_METHODS_JSON (must exist when set), else the repository's
/// dist/protocol/methods.json; None (after a skip) when neither is there.
fn load_table(test: &str) -> Option<Value> {
    let path = match env::var_os("LAYERPIPE_METHODS_JSON") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => {
            let path =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dist/protocol/methods.json");
            if !path.exists() {
                common::skip(
                    test,
                    &format!(
                        "{} is missing: run `npm run build`, or set LAYERPIPE_METHODS_JSON",
                        path.display()
                    ),
                );
                return None;
            }
            path
        }
    };
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display())))
}

/// The JSON's methods by name.
fn methods_by_name(table: &Value) -> BTreeMap<String, Value> {
    table["METHODS"]
        .as_array()
        .expect("METHODS is an array")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().expect("a method has a name").to_string(),
                m.clone(),
            )
        })
        .collect()
}

#[test]
fn method_table_matches_protocol_methods_ts() {
    let table = match load_table("method_table_matches_protocol_methods_ts") {
        Some(table) => table,
        None => return,
    };
    let wire = methods_by_name(&table);
    let ours: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
    let theirs: Vec<&str> = table["METHODS"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(ours, theirs, "the same methods, in the same order");

    let mut drift = Vec::new();
    for method in METHODS {
        let spec = &wire[method.name];
        let since = method.since.to_string();
        if spec["since"] != since.as_str() {
            drift.push(format!(
                "{}: since {since} here, {} in methods.ts",
                method.name, spec["since"]
            ));
        }
        let args = Value::Array(
            method
                .args
                .iter()
                .map(|k| Value::from(k.as_str()))
                .collect(),
        );
        if spec["args"] != args {
            drift.push(format!(
                "{}: args {} here, {} in methods.ts",
                method.name, args, spec["args"]
            ));
        }
        if spec["data"] != method.data.as_str() {
            drift.push(format!(
                "{}: data {} here, {} in methods.ts",
                method.name,
                method.data.as_str(),
                spec["data"]
            ));
        }
    }
    assert!(
        drift.is_empty(),
        "the method table drifted from protocol/methods.ts:\n{}",
        drift.join("\n")
    );
}

#[test]
fn constants_match_protocol_methods_ts() {
    let table = match load_table("constants_match_protocol_methods_ts") {
        Some(table) => table,
        None => return,
    };
    assert_eq!(
        table["MAX_MESSAGE_SIZE"].as_u64(),
        Some(MAX_MESSAGE_SIZE as u64)
    );
    assert_eq!(table["MAX_JSON_INTEGER"].as_u64(), Some(MAX_JSON_INTEGER));
    assert_eq!(table["SENTINEL_IMAGE_ID"].as_u64(), Some(SENTINEL_IMAGE_ID));
    let codes: Vec<&str> = table["ERROR_CODES"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 3, "ErrorCode has three variants: {codes:?}");
    for code in codes {
        assert_eq!(
            ErrorCode::from_wire(code).as_str(),
            code,
            "error_code {code} is known here"
        );
    }
    let version = ProtocolVersion::parse(table["PROTOCOL_VERSION"].as_str().unwrap()).unwrap();
    assert!(
        version >= MIN_VERSION && version < NEXT_INCOMPATIBLE,
        "{version} is accepted"
    );
    for method in METHODS {
        assert!(
            method.since <= version,
            "{} arrived after {version}",
            method.name
        );
    }
}
