//! Protocol 1.0 transfers against the real server: many threads on one connection, digest
//! mismatches after every byte, broken pipes and cancels, raw ranges, every payload kind,
//! bad requests, progress. Skipped when the program is skopeo.

mod common;

use std::fs;
use std::io::Read;
use std::sync::Barrier;
use std::thread;

use common::{Blob, Layout};
use layerpipe::v1::{self, Options, Payload};
use layerpipe::{Error, ErrorCode, RpcErrorCode};
use serde_json::Value;

fn read_all(proxy: &v1::ImageProxy, image: &v1::OpenedImage, blob: &Blob) -> Vec<u8> {
    let mut transfer = proxy
        .get_blob(image, &blob.digest, Some(blob.size()))
        .unwrap();
    assert_eq!(transfer.size(), Some(blob.size()));
    let mut data = Vec::new();
    transfer.read_to_end(&mut data).unwrap();
    transfer.finish().unwrap();
    data
}

#[test]
fn many_threads_share_one_connection() {
    let program = require_layerpipe!("many_threads_share_one_connection");
    let layout = Layout::build();
    let proxy = common::start_1(&program, Options::default());
    let image = proxy.open_image(&layout.reference()).unwrap();
    let threads = 8;
    let barrier = Barrier::new(threads);
    thread::scope(|scope| {
        for t in 0..threads {
            let (proxy, image, layout, barrier) = (&proxy, &image, &layout, &barrier);
            scope.spawn(move || {
                barrier.wait();
                for round in 0..4 {
                    let blob = &layout.layers[(t + round) % layout.layers.len()];
                    let data = read_all(proxy, image, blob);
                    assert!(data == blob.bytes, "thread {t} round {round}");
                    assert_eq!(
                        proxy.get_manifest(image).unwrap().digest,
                        layout.manifest.digest
                    );
                }
                let own = proxy.open_image(&layout.reference()).unwrap();
                let config: Value =
                    serde_json::from_slice(&proxy.get_full_config(&own).unwrap().data).unwrap();
                assert_eq!(config, layout.config_json);
                proxy.close_image(&own).unwrap();
            });
        }
    });
    // Several transfers open at once in one thread, read interleaved.
    let (big, small) = (&layout.layers[1], &layout.layers[2]);
    let mut first = proxy
        .get_blob(&image, &big.digest, Some(big.size()))
        .unwrap();
    let mut second = proxy
        .get_blob(&image, &small.digest, Some(small.size()))
        .unwrap();
    let mut head = vec![0u8; 100_000];
    first.read_exact(&mut head).unwrap();
    let mut other = Vec::new();
    second.read_to_end(&mut other).unwrap();
    second.finish().unwrap();
    first.read_to_end(&mut head).unwrap();
    first.finish().unwrap();
    assert!(head == big.bytes && other == small.bytes);
    proxy.finalize().unwrap();
}

#[test]
fn a_digest_mismatch_is_reported_after_every_byte() {
    let program = require_layerpipe!("a_digest_mismatch_is_reported_after_every_byte");
    let layout = Layout::build();
    let blob = &layout.layers[1];
    let mut bad = blob.bytes.clone();
    bad[blob.bytes.len() / 2] ^= 0xff;
    fs::write(layout.blob_path(&blob.digest), &bad).unwrap();
    for payload in [Payload::Fd, Payload::Stream] {
        let proxy = common::start_1(
            &program,
            Options {
                payloads: vec![payload],
                window: None,
                ..Default::default()
            },
        );
        let image = proxy.open_image(&layout.reference()).unwrap();
        let mut transfer = proxy
            .get_blob(&image, &blob.digest, Some(blob.size()))
            .unwrap();
        let mut data = Vec::new();
        let read = transfer.read_to_end(&mut data);
        assert!(
            data == bad,
            "{payload:?}: {} of {} bytes before the error ({read:?})",
            data.len(),
            bad.len()
        );
        let err = transfer.finish().unwrap_err();
        assert_eq!(
            err.rpc_code(),
            Some(RpcErrorCode::VerificationFailed),
            "{payload:?}: {err:?}"
        );
        assert!(!err.is_retryable());
        // Unverified, the same bytes are no error.
        let mut raw = proxy.get_raw_blob(&image, &blob.digest).unwrap();
        let mut raw_data = Vec::new();
        raw.read_to_end(&mut raw_data).unwrap();
        raw.finish().unwrap();
        assert!(raw_data == bad);
        assert!(read_all(&proxy, &image, &layout.layers[0]) == layout.layers[0].bytes);
        proxy.finalize().unwrap();
    }
}

#[test]
fn finishing_before_reading_is_a_broken_pipe_and_cancel_frees_the_transfer() {
    let program = require_layerpipe!(
        "finishing_before_reading_is_a_broken_pipe_and_cancel_frees_the_transfer"
    );
    let layout = Layout::build();
    let big = &layout.layers[1];
    for payload in [Payload::Fd, Payload::Stream] {
        let proxy = common::start_1(
            &program,
            Options {
                payloads: vec![payload],
                window: None,
                ..Default::default()
            },
        );
        let image = proxy.open_image(&layout.reference()).unwrap();
        let mut transfer = proxy
            .get_blob(&image, &big.digest, Some(big.size()))
            .unwrap();
        let mut head = [0u8; 1000];
        transfer.read_exact(&mut head).unwrap();
        let err = transfer.finish().unwrap_err();
        assert_eq!(
            err.rpc_code(),
            Some(RpcErrorCode::BrokenPipe),
            "{payload:?}: {err:?}"
        );
        assert_eq!(err.error_code(), Some(ErrorCode::Epipe));
        assert!(err.to_string().ends_with("broken pipe"), "{err}");

        let transfer = proxy
            .get_blob(&image, &big.digest, Some(big.size()))
            .unwrap();
        proxy.cancel_transfer(transfer).unwrap();
        // Dropped unread: cancelled too. The connection goes on serving.
        drop(proxy.get_blob(&image, &big.digest, None).unwrap());
        assert!(read_all(&proxy, &image, big) == big.bytes);
        proxy.finalize().unwrap();
    }
}

#[test]
fn raw_blob_ranges_resume_a_partial_blob() {
    let program = require_layerpipe!("raw_blob_ranges_resume_a_partial_blob");
    let layout = Layout::build();
    let proxy = common::start_1(&program, Options::default());
    let image = proxy.open_image(&layout.reference()).unwrap();
    let blob = &layout.layers[1];
    let cut = 600_000usize;
    let mut head = proxy
        .get_raw_blob_range(&image, &blob.digest, 0, Some(cut as u64))
        .unwrap();
    assert_eq!(head.size(), Some(cut as u64));
    let mut data = Vec::new();
    head.read_to_end(&mut data).unwrap();
    head.finish().unwrap();
    let mut tail = proxy
        .get_raw_blob_range(&image, &blob.digest, cut as u64, None)
        .unwrap();
    assert_eq!(tail.size(), Some(blob.size() - cut as u64));
    tail.read_to_end(&mut data).unwrap();
    tail.finish().unwrap();
    assert!(data == blob.bytes);
    let mut middle = proxy
        .get_raw_blob_range(&image, &blob.digest, 1000, Some(10))
        .unwrap();
    let mut ten = Vec::new();
    middle.read_to_end(&mut ten).unwrap();
    middle.finish().unwrap();
    assert_eq!(ten, &blob.bytes[1000..1010]);
    proxy.finalize().unwrap();
}

#[test]
fn every_payload_kind_pulls_the_same_bytes() {
    let program = require_layerpipe!("every_payload_kind_pulls_the_same_bytes");
    let layout = Layout::build();
    for payload in [Payload::Fd, Payload::Fifo, Payload::Stream] {
        // A small window: many credits for the 1.5 MiB layer.
        let options = Options {
            payloads: vec![payload],
            window: Some(64 * 1024),
            ..Default::default()
        };
        let proxy = match v1::ImageProxy::spawn(common::config(&program), options) {
            Ok(proxy) => proxy,
            // FIFOs are for clients that cannot take fds (stdio); a socket pair may not offer them.
            Err(err)
                if payload == Payload::Fifo
                    && err.rpc_code() == Some(RpcErrorCode::InvalidParams) =>
            {
                eprintln!("fifo payload not offered on the socket pair: {err}");
                continue;
            }
            Err(err) => panic!("{payload:?}: {err}"),
        };
        assert_eq!(proxy.server().payload, payload);
        let image = proxy.open_image(&layout.reference()).unwrap();
        for blob in layout.layers.iter().chain(Some(&layout.config)) {
            assert!(
                read_all(&proxy, &image, blob) == blob.bytes,
                "{payload:?}: {}",
                blob.digest
            );
            let mut raw = proxy.get_raw_blob(&image, &blob.digest).unwrap();
            let mut data = Vec::new();
            raw.read_to_end(&mut data).unwrap();
            raw.finish().unwrap();
            assert!(data == blob.bytes, "{payload:?}: raw {}", blob.digest);
        }
        proxy.finalize().unwrap();
    }
}

#[test]
fn bad_requests_get_clear_errors_and_the_connection_keeps_serving() {
    let program =
        require_layerpipe!("bad_requests_get_clear_errors_and_the_connection_keeps_serving");
    let layout = Layout::build();
    let proxy = common::start_1(&program, Options::default());
    let image = proxy.open_image(&layout.reference()).unwrap();
    let absent = format!("sha256:{}", "0".repeat(64));
    for digest in [absent.as_str(), "sha256:not-hex", "nonsense"] {
        let outcome = proxy.get_blob(&image, digest, Some(10)).and_then(|mut t| {
            let mut data = Vec::new();
            let _ = t.read_to_end(&mut data);
            t.finish()
        });
        let err = outcome.unwrap_err();
        assert!(matches!(err, Error::Rpc { .. }), "{digest}: {err:?}");
    }
    // Params the table refuses are never sent.
    let mut params = serde_json::Map::new();
    params.insert("image".into(), Value::from("one"));
    assert!(matches!(
        proxy.call_method("GetConfig", params),
        Err(Error::InvalidArgument(_))
    ));
    let mut params = serde_json::Map::new();
    params.insert("transfer".into(), Value::from(987_654));
    let err = proxy.call_method("FinishTransfer", params).unwrap_err();
    assert!(err.rpc_code().is_some(), "an unknown transfer: {err:?}");
    assert!(read_all(&proxy, &image, &layout.layers[0]) == layout.layers[0].bytes);
    proxy.finalize().unwrap();
}

#[test]
fn progress_reports_never_pass_the_total() {
    let program = require_layerpipe!("progress_reports_never_pass_the_total");
    let layout = Layout::build();
    let proxy = common::start_1(&program, Options::default());
    let image = proxy.open_image(&layout.reference()).unwrap();
    let blob = &layout.layers[1];
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    let mut transfer = proxy
        .get_blob_with_progress(&image, &blob.digest, Some(blob.size()), move |p| {
            record.lock().unwrap().push(p)
        })
        .unwrap();
    // Slowly, so that the server has time to report.
    let mut data = Vec::new();
    let mut chunk = vec![0u8; 128 * 1024];
    loop {
        let n = transfer.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        data.extend_from_slice(&chunk[..n]);
        thread::sleep(std::time::Duration::from_millis(30));
    }
    transfer.finish().unwrap();
    assert!(data == blob.bytes);
    let seen = seen.lock().unwrap();
    assert!(
        !seen.is_empty(),
        "no transfer/progress in {} reads",
        blob.size() / chunk.len() as u64
    );
    for p in seen.iter() {
        assert!(
            p.bytes <= blob.size() && p.total.map_or(true, |t| t == blob.size()),
            "{p:?}"
        );
    }
    proxy.finalize().unwrap();
}
