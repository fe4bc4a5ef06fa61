//! Initialize, opening images, manifests, configs and layer lists, against a real proxy.

mod common;

use common::{Layout, OCI_MANIFEST};
use layerpipe::{Error, ErrorCode, ImageProxy, ProtocolVersion};

fn v(major: u64, minor: u64, patch: u64) -> ProtocolVersion {
    ProtocolVersion::new(major, minor, patch)
}

#[test]
fn initialize_answers_a_0_2_x_version_of_at_least_0_2_3() {
    let program = require_proxy!("initialize_answers_a_0_2_x_version_of_at_least_0_2_3");
    let proxy = common::start(&program);
    let version = proxy.protocol_version();
    eprintln!("{} speaks protocol {version}", program.display());
    assert!(version >= v(0, 2, 3) && version < v(0, 3, 0), "{version}");
    proxy.finalize().unwrap();
}

/// Checks everything the metadata methods say about the fixture image, whatever the transport.
fn check_metadata(proxy: &ImageProxy, layout: &Layout, reference: &str, manifest_bytes_kept: bool) {
    let image = proxy.open_image(reference).unwrap();
    assert_ne!(image.id(), 0);

    let (digest, bytes) = proxy.fetch_manifest(&image).unwrap();
    assert_eq!(
        digest,
        common::digest_of(&bytes),
        "digest is of the bytes as stored"
    );
    if manifest_bytes_kept {
        assert_eq!(digest, layout.manifest.digest);
        assert_eq!(
            bytes, layout.manifest.bytes,
            "an OCI manifest comes back unchanged"
        );
    }

    let (parsed_digest, manifest) = proxy.fetch_manifest_parsed(&image).unwrap();
    assert_eq!(parsed_digest, digest);
    assert_eq!(manifest.schema_version, 2);
    assert_eq!(manifest.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(manifest.config.digest, layout.config.digest);
    assert_eq!(manifest.config.size, layout.config.size());
    let layers: Vec<(String, u64, String)> = manifest
        .layers
        .iter()
        .map(|d| (d.digest.clone(), d.size, d.media_type.clone()))
        .collect();
    let expected: Vec<(String, u64, String)> = layout
        .layers
        .iter()
        .map(|b| (b.digest.clone(), b.size(), b.media_type.clone()))
        .collect();
    assert_eq!(layers, expected);

    let config = proxy.fetch_config(&image).unwrap();
    assert_eq!(
        config, layout.config_json,
        "GetFullConfig is the whole OCI config"
    );
    let raw = proxy.fetch_config_raw(&image).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&raw).unwrap(),
        config
    );

    let member = proxy.fetch_config_member(&image).unwrap();
    assert_eq!(
        member, layout.config_json["config"],
        "GetConfig is only the config member"
    );
    assert_eq!(member["Env"][1], "GREETING=hello");

    proxy.close_image(&image).unwrap();
}

#[test]
fn oci_layout_manifest_and_configs_match_what_was_written() {
    let program = require_proxy!("oci_layout_manifest_and_configs_match_what_was_written");
    let layout = Layout::build();
    let proxy = common::start(&program);
    check_metadata(&proxy, &layout, &layout.reference(), true);
    proxy.finalize().unwrap();
}

#[test]
fn dir_transport_manifest_and_configs_match_what_was_written() {
    let test = "dir_transport_manifest_and_configs_match_what_was_written";
    let program = require_proxy!(test);
    let layout = Layout::build();
    let (_dir, reference) = match layout.to_dir_transport(test) {
        Some(dir) => dir,
        None => return,
    };
    let proxy = common::start(&program);
    check_metadata(&proxy, &layout, &reference, true);
    // Blobs read through dir: are the same bytes.
    let image = proxy.open_image(&reference).unwrap();
    let mut data = Vec::new();
    let layer = &layout.layers[1];
    proxy
        .copy_blob(&image, &layer.digest, layer.size(), &mut data)
        .unwrap();
    assert!(data == layer.bytes);
    proxy.finalize().unwrap();
}

#[test]
fn one_image_can_be_opened_several_times_and_ids_differ() {
    let program = require_proxy!("one_image_can_be_opened_several_times_and_ids_differ");
    let layout = Layout::build();
    let proxy = common::start(&program);
    let first = proxy.open_image(&layout.reference()).unwrap();
    let second = proxy.open_image(&layout.reference()).unwrap();
    assert_ne!(first.id(), second.id());
    proxy.close_image(&first).unwrap();
    // The second stays usable after the first is closed.
    let (digest, _) = proxy.fetch_manifest(&second).unwrap();
    assert_eq!(digest, layout.manifest.digest);
    proxy.close_image(&second).unwrap();
    proxy.finalize().unwrap();
}

#[test]
fn closed_or_missing_images_are_errors_and_the_proxy_keeps_serving() {
    let program = require_proxy!("closed_or_missing_images_are_errors_and_the_proxy_keeps_serving");
    let layout = Layout::build();
    let proxy = common::start(&program);

    let missing_dir = format!("oci:{}/no-such-layout:latest", layout.path().display());
    let err = proxy.open_image(&missing_dir).unwrap_err();
    assert!(
        matches!(err, Error::Proxy { ref method, .. } if method == "OpenImage"),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    let err = proxy.open_image("no-such-transport:whatever").unwrap_err();
    assert_eq!(err.error_code(), Some(ErrorCode::Other), "{err:?}");

    let image = proxy.open_image(&layout.reference()).unwrap();
    proxy.close_image(&image).unwrap();
    let err = proxy.fetch_manifest(&image).unwrap_err();
    assert!(matches!(err, Error::Proxy { .. }), "{err:?}");
    let err = proxy.close_image(&image).unwrap_err();
    assert!(matches!(err, Error::Proxy { .. }), "{err:?}");

    // Still serving after all those errors.
    let image = proxy.open_image(&layout.reference()).unwrap();
    assert_eq!(
        proxy.fetch_manifest(&image).unwrap().0,
        layout.manifest.digest
    );
    proxy.finalize().unwrap();
}

#[test]
fn open_image_optional_returns_none_only_for_a_missing_image() {
    let program = require_proxy!("open_image_optional_returns_none_only_for_a_missing_image");
    let layout = Layout::build();
    let proxy = common::start(&program);
    let missing_tag = format!("oci:{}:no-such-tag", layout.path().display());
    if proxy.protocol_version() < v(0, 2, 4) {
        let err = proxy.open_image_optional(&layout.reference()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::MethodUnsupported {
                    method: "OpenImageOptional",
                    ..
                }
            ),
            "{err:?}"
        );
        eprintln!(
            "proxy speaks {}: OpenImageOptional checked to be refused locally",
            proxy.protocol_version()
        );
    } else {
        assert!(proxy.open_image_optional(&missing_tag).unwrap().is_none());
        let image = proxy
            .open_image_optional(&layout.reference())
            .unwrap()
            .unwrap();
        assert_eq!(
            proxy.fetch_manifest(&image).unwrap().0,
            layout.manifest.digest
        );
        // A transport failure other than "not found" stays an error.
        assert!(proxy.open_image_optional("no-such-transport:x").is_err());
    }
    // OpenImage itself reports the missing tag as an error.
    assert!(proxy.open_image(&missing_tag).is_err());
    proxy.finalize().unwrap();
}

#[test]
fn layer_info_lists_the_layers_when_the_version_has_it() {
    let program = require_proxy!("layer_info_lists_the_layers_when_the_version_has_it");
    let layout = Layout::build();
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    let info = proxy.get_layer_info(&image).unwrap();
    if proxy.protocol_version() < v(0, 2, 5) {
        assert!(info.is_none(), "no GetLayerInfo before 0.2.5");
    } else {
        let info = info.expect("0.2.5 and later list layers");
        let got: Vec<(String, Option<u64>, String)> = info
            .iter()
            .map(|l| (l.digest.clone(), l.known_size(), l.media_type.clone()))
            .collect();
        let expected: Vec<(String, Option<u64>, String)> = layout
            .layers
            .iter()
            .map(|b| (b.digest.clone(), Some(b.size()), b.media_type.clone()))
            .collect();
        assert_eq!(got, expected);
    }
    proxy.finalize().unwrap();
}
