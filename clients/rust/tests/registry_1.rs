//! Protocol 1.0 on a registry image (Debian's docker-registry): the same answers as 0.2.x,
//! spawned and through the unix service; tag listing; ranged raw blobs (HTTP Range requests).

mod common;

use std::io::Read;
use std::path::Path;

use common::registry::Registry;
use common::service::Service;
use common::Layout;
use layerpipe::v1::{self, Options, Payload};
use layerpipe::ImageProxyConfig;

fn insecure(program: &Path) -> ImageProxyConfig {
    ImageProxyConfig {
        insecure_skip_tls_verification: true,
        ..common::config(program)
    }
}

/// 1.0 answers for `reference` against the 0.2.x ones, every layer pulled.
fn same_as_0_2(
    old: &layerpipe::ImageProxy,
    new: &v1::ImageProxy,
    reference: &str,
    layout: &Layout,
) {
    let old_image = old.open_image(reference).unwrap();
    let image = new.open_image(reference).unwrap();
    let (old_digest, old_manifest) = old.fetch_manifest(&old_image).unwrap();
    let manifest = new.get_manifest(&image).unwrap();
    assert_eq!(manifest.digest, old_digest);
    assert!(manifest.data == old_manifest, "manifest bytes differ");
    assert!(new.get_full_config(&image).unwrap().data == old.fetch_config_raw(&old_image).unwrap());
    let layers = new.get_layer_info(&image).unwrap();
    assert_eq!(
        Some(layers.clone()),
        old.get_layer_info(&old_image).unwrap()
    );
    for (info, blob) in layers.iter().zip(&layout.layers) {
        let mut transfer = new
            .get_blob(&image, &info.digest, info.known_size())
            .unwrap();
        let mut data = Vec::new();
        transfer.read_to_end(&mut data).unwrap();
        transfer.finish().unwrap();
        let size = info.known_size().expect("a registry knows its sizes");
        let (mut reader, finish) = old.get_blob(&old_image, &info.digest, size).unwrap();
        let mut old_data = Vec::new();
        reader.read_to_end(&mut old_data).unwrap();
        finish.finish().unwrap();
        assert!(data == old_data, "layer {}", info.digest);
        // skopeo may compress an uncompressed layer on its way into the registry.
        assert!(info.digest != blob.digest || data == blob.bytes);
    }
    new.close_image(&image).unwrap();
    old.close_image(&old_image).unwrap();
}

#[test]
fn a_registry_image_over_1_0_spawned_and_through_the_service_matches_0_2_x() {
    let test = "a_registry_image_over_1_0_spawned_and_through_the_service_matches_0_2_x";
    let program = require_layerpipe!(test);
    let registry = match Registry::start(test) {
        Some(registry) => registry,
        None => return,
    };
    let layout = Layout::build();
    registry.push(&layout.reference(), "rust/image:latest");
    registry.push(&layout.reference(), "rust/image:second");
    let reference = registry.reference("rust/image:latest");

    let old = layerpipe::ImageProxy::new_with_config(insecure(&program)).unwrap();
    let new = v1::ImageProxy::spawn(insecure(&program), Options::default()).unwrap();
    same_as_0_2(&old, &new, &reference, &layout);

    let mut tags = new.list_tags(&registry.reference("rust/image")).unwrap();
    tags.sort();
    assert_eq!(tags, vec!["latest".to_string(), "second".to_string()]);

    // A blob resumed from the middle, as a registry Range request.
    let image = new.open_image(&reference).unwrap();
    let blob = &layout.layers[1];
    let cut = 700_001u64;
    let mut data = Vec::new();
    for (offset, length) in [(0, Some(cut)), (cut, None)] {
        let mut part = new
            .get_raw_blob_range(&image, &blob.digest, offset, length)
            .unwrap();
        part.read_to_end(&mut data).unwrap();
        part.finish().unwrap();
    }
    assert!(data == blob.bytes, "ranges joined differ");
    new.close_image(&image).unwrap();
    new.finalize().unwrap();

    // Through the service: two connections, fd and stream.
    let service = match Service::start(test, &program, &["--tls-verify=false"]) {
        Some(service) => service,
        None => return old.finalize().unwrap(),
    };
    for payload in [Payload::Fd, Payload::Stream] {
        let client = service.connect(payload);
        same_as_0_2(&old, &client, &reference, &layout);
        client.finalize().unwrap();
    }
    old.finalize().unwrap();
    let status = service.terminate(std::time::Duration::from_secs(30));
    assert!(status.success(), "{status}");
}
