//! Protocol 1.0 against the real server (`layerpipe experimental-image-proxy`, which tells 1.0
//! from 0.2.x by the first packet): answers equal to 0.2.x for the same images, many threads on
//! one connection, verification and broken-pipe errors. Skipped when the program is skopeo.

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

/// Everything 0.2.x and 1.0 both answer for `reference`, compared, and every layer pulled.
fn compare_with_0_2(program: &std::path::Path, layout: &Layout, reference: &str) {
    let old = common::start(program);
    let new = common::start_1(program, Options::default());
    assert_eq!(new.server().payload, Payload::Fd);
    assert!(
        new.server().protocol_version.starts_with("1."),
        "{:?}",
        new.server()
    );
    let old_image = old.open_image(reference).unwrap();
    let image = new.open_image(reference).unwrap();

    let (old_digest, old_manifest) = old.fetch_manifest(&old_image).unwrap();
    let manifest = new.get_manifest(&image).unwrap();
    assert_eq!(manifest.digest, old_digest, "{reference}");
    assert!(
        manifest.data == old_manifest,
        "{reference}: manifest bytes differ"
    );
    assert_eq!(manifest.media_type, common::OCI_MANIFEST);

    let config = new.get_full_config(&image).unwrap();
    assert!(
        config.data == old.fetch_config_raw(&old_image).unwrap(),
        "{reference}: config"
    );
    let member: Value = serde_json::from_slice(&new.get_config(&image).unwrap()).unwrap();
    assert_eq!(
        member,
        old.fetch_config_member(&old_image).unwrap(),
        "{reference}"
    );
    assert_eq!(member, layout.config_json["config"]);

    let layers = new.get_layer_info(&image).unwrap();
    assert_eq!(
        Some(layers.clone()),
        old.get_layer_info(&old_image).unwrap(),
        "{reference}"
    );
    assert_eq!(layers.len(), layout.layers.len());

    for (info, blob) in layers.iter().zip(&layout.layers) {
        assert_eq!(info.digest, blob.digest);
        let data = read_all(&new, &image, blob);
        let (mut reader, finish) = old.get_blob(&old_image, &blob.digest, blob.size()).unwrap();
        let mut old_data = Vec::new();
        reader.read_to_end(&mut old_data).unwrap();
        finish.finish().unwrap();
        assert!(
            data == old_data && data == blob.bytes,
            "{reference}: layer {} differs",
            blob.digest
        );
        // The size may be left to the manifest.
        let mut copied = Vec::new();
        assert_eq!(
            new.copy_blob(&image, &blob.digest, None, &mut copied)
                .unwrap(),
            blob.size()
        );
        assert!(copied == blob.bytes);
    }
    new.close_image(&image).unwrap();
    old.close_image(&old_image).unwrap();
    new.finalize().unwrap();
    old.finalize().unwrap();
}

#[test]
fn every_layer_over_1_0_matches_0_2_x_for_oci_and_dir() {
    let program = require_layerpipe!("every_layer_over_1_0_matches_0_2_x_for_oci_and_dir");
    let layout = Layout::build();
    compare_with_0_2(&program, &layout, &layout.reference());
    if let Some((_dir, reference)) =
        layout.to_dir_transport("every_layer_over_1_0_matches_0_2_x_for_oci_and_dir")
    {
        compare_with_0_2(&program, &layout, &reference);
    }
}

#[test]
fn optional_images_raw_manifests_and_instances_of_a_single_image() {
    let program =
        require_layerpipe!("optional_images_raw_manifests_and_instances_of_a_single_image");
    let layout = Layout::build();
    let proxy = common::start_1(&program, Options::default());
    let missing = format!("oci:{}:absent", layout.path().display());
    assert!(proxy.open_image_optional(&missing).unwrap().is_none());
    let err = proxy.open_image(&missing).unwrap_err();
    assert_eq!(err.rpc_code(), Some(RpcErrorCode::ImageNotFound), "{err:?}");

    let image = proxy
        .open_image_optional(&layout.reference())
        .unwrap()
        .unwrap();
    let other = proxy.open_image(&layout.reference()).unwrap();
    assert_ne!(image.id(), other.id());
    let raw = proxy.get_manifest_raw(&image).unwrap();
    assert_eq!(raw.digest, layout.manifest.digest);
    assert!(
        raw.data == layout.manifest.bytes,
        "raw: the bytes as stored"
    );
    assert!(proxy.list_instances(&image).unwrap().is_empty());
    proxy.close_image(&other).unwrap();
    // A closed image is an error, and the connection keeps serving.
    let err = proxy.get_manifest(&other).unwrap_err();
    assert!(err.rpc_code().is_some(), "{err:?}");
    assert_eq!(
        proxy.get_manifest(&image).unwrap().digest,
        layout.manifest.digest
    );
    proxy.finalize().unwrap();
}

#[test]
fn a_multi_arch_index_lists_its_instances_and_picks_by_platform() {
    let program =
        require_layerpipe!("a_multi_arch_index_lists_its_instances_and_picks_by_platform");
    let layout = Layout::build();
    let multi = layout.add_multi_arch();
    let proxy = common::start_1(&program, Options::default());
    let image = proxy.open_image(&layout.multi_reference()).unwrap();
    let raw = proxy.get_manifest_raw(&image).unwrap();
    assert_eq!(raw.digest, multi.index.digest);
    assert_eq!(raw.media_type, common::OCI_INDEX);
    assert!(raw.data == multi.index.bytes);
    let instances = proxy.list_instances(&image).unwrap();
    assert_eq!(instances.len(), 2);
    for ((os, arch, blob), instance) in multi.instances.iter().zip(&instances) {
        assert_eq!(instance.digest, blob.digest);
        assert_eq!(instance.size, blob.size());
        let platform = instance.platform.clone().unwrap();
        assert_eq!((&platform.os, &platform.architecture), (os, arch));
        let picked = proxy
            .get_manifest_for_platform(&image, &platform, true)
            .unwrap();
        assert_eq!(picked.digest, blob.digest);
        assert!(picked.data == blob.bytes);
    }
    // Without options: the host's instance, as 0.2.x gives it.
    let old = common::start(&program);
    let old_image = old.open_image(&layout.multi_reference()).unwrap();
    let (old_digest, old_bytes) = old.fetch_manifest(&old_image).unwrap();
    let chosen = proxy.get_manifest(&image).unwrap();
    assert_eq!(chosen.digest, old_digest);
    assert!(chosen.data == old_bytes);
    old.finalize().unwrap();
    proxy.finalize().unwrap();
}

#[test]
fn tags_of_an_oci_layout_are_its_ref_names() {
    let program = require_layerpipe!("tags_of_an_oci_layout_are_its_ref_names");
    let layout = Layout::build();
    layout.add_multi_arch();
    let proxy = common::start_1(&program, Options::default());
    let mut tags = proxy
        .list_tags(&format!("oci:{}", layout.path().display()))
        .unwrap();
    tags.sort();
    assert_eq!(tags, vec!["latest".to_string(), "multi".to_string()]);
    proxy.finalize().unwrap();
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

#[test]
fn a_request_to_a_stalled_registry_is_cancelled_after_the_timeout() {
    let program =
        require_layerpipe!("a_request_to_a_stalled_registry_is_cancelled_after_the_timeout");
    // A "registry" that refuses TLS (so the proxy falls back to plain HTTP) and never answers
    // an HTTP request.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap();
    let (accepted_tx, accepted) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut first = [0u8; 1];
            if stream.read_exact(&mut first).is_err() || first[0] == 0x16 {
                continue; // a TLS ClientHello: dropped, the connection closes
            }
            if accepted_tx.send(stream).is_err() {
                return;
            }
        }
    });
    let layout = Layout::build();
    let config = layerpipe::ImageProxyConfig {
        insecure_skip_tls_verification: true,
        ..common::config(&program)
    };
    let options = Options {
        timeout: Some(std::time::Duration::from_secs(2)),
        ..Default::default()
    };
    let proxy = v1::ImageProxy::spawn(config, options).unwrap();
    let started = std::time::Instant::now();
    let err = proxy
        .open_image(&format!("docker://{host}/stalled/image:latest"))
        .unwrap_err();
    assert_eq!(err.rpc_code(), Some(RpcErrorCode::Cancelled), "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The request really stopped: the server closed its connection to the registry.
    let mut stalled = accepted
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the proxy connected");
    stalled
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut request = Vec::new();
    let closed = stalled.read_to_end(&mut request);
    assert!(
        closed.is_ok(),
        "the proxy kept its registry connection open: {closed:?}"
    );
    // The connection serves on.
    let image = proxy.open_image(&layout.reference()).unwrap();
    assert_eq!(
        proxy.get_manifest(&image).unwrap().digest,
        layout.manifest.digest
    );
    proxy.finalize().unwrap();
}
