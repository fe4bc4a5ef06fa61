//! Protocol 1.0 against the real server (`layerpipe experimental-image-proxy`, which tells 1.0
//! from 0.2.x by the first packet): answers equal to 0.2.x for the same images, manifests,
//! instances, tags, and a request cancelled at its timeout. Skipped when the program is skopeo.
//! Transfers are in transfers_1.rs.

mod common;

use std::io::Read;
use std::thread;

use common::{Blob, Layout};
use layerpipe::v1::{self, Options, Payload};
use layerpipe::RpcErrorCode;
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
    assert_eq!(raw.media_type, common::multi_arch::OCI_INDEX);
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
