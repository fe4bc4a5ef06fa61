//! Protocol 1.0 through the long-running service (`layerpipe serve --listen unix:PATH`, a
//! SOCK_SEQPACKET socket): several clients at once, one dying mid-transfer without disturbing
//! the others, and SIGTERM ending the service with status 0. Skipped for skopeo, and (with the
//! reason) when the program has no `serve --listen`.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use common::service::Service;
use common::{Layout, TempDir};
use layerpipe::v1::{self, Payload};
use layerpipe::Error;

fn pull_every_layer(proxy: &v1::ImageProxy, layout: &Layout) {
    let image = proxy.open_image(&layout.reference()).unwrap();
    assert_eq!(
        proxy.get_manifest(&image).unwrap().digest,
        layout.manifest.digest
    );
    for (info, blob) in proxy
        .get_layer_info(&image)
        .unwrap()
        .iter()
        .zip(&layout.layers)
    {
        let mut transfer = proxy
            .get_blob(&image, &info.digest, info.known_size())
            .unwrap();
        let mut data = Vec::new();
        transfer.read_to_end(&mut data).unwrap();
        transfer.finish().unwrap();
        assert!(data == blob.bytes, "layer {}", blob.digest);
    }
    proxy.close_image(&image).unwrap();
}

#[test]
fn clients_of_the_service_pull_at_once_and_one_dying_disturbs_no_other() {
    let test = "clients_of_the_service_pull_at_once_and_one_dying_disturbs_no_other";
    let program = require_layerpipe!(test);
    let service = match Service::start(test, &program, &[]) {
        Some(service) => service,
        None => return,
    };
    let mode = fs::metadata(&service.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let layout = Layout::build();

    // The same answers as a spawned proxy speaking 0.2.x.
    let old = common::start(&program);
    let old_image = old.open_image(&layout.reference()).unwrap();
    let (old_digest, old_manifest) = old.fetch_manifest(&old_image).unwrap();
    old.finalize().unwrap();
    let first = service.connect(Payload::Fd);
    let image = first.open_image(&layout.reference()).unwrap();
    let manifest = first.get_manifest(&image).unwrap();
    assert_eq!(
        (manifest.digest.as_str(), &manifest.data),
        (old_digest.as_str(), &old_manifest)
    );

    // A client that dies with a transfer half read and an image open.
    let doomed = service.connect(Payload::Fd);
    let doomed_image = doomed.open_image(&layout.reference()).unwrap();
    let big = &layout.layers[1];
    let mut half = doomed
        .get_blob(&doomed_image, &big.digest, Some(big.size()))
        .unwrap();
    let mut head = [0u8; 4096];
    half.read_exact(&mut head).unwrap();
    // Its socket closes as a dead process's would, with the transfer still held here.
    doomed.finalize().unwrap();
    drop(half);

    let clients = 3;
    let barrier = Barrier::new(clients);
    thread::scope(|scope| {
        for (n, payload) in [Payload::Fd, Payload::Stream, Payload::Fd]
            .into_iter()
            .enumerate()
        {
            let (service, layout, barrier) = (&service, &layout, &barrier);
            scope.spawn(move || {
                let proxy = service.connect(payload);
                barrier.wait();
                for _ in 0..2 {
                    pull_every_layer(&proxy, layout);
                }
                proxy
                    .finalize()
                    .unwrap_or_else(|e| panic!("client {n}: {e}"));
            });
        }
    });
    // The first client's image is still open and served.
    assert_eq!(
        first.get_manifest(&image).unwrap().digest,
        layout.manifest.digest
    );
    pull_every_layer(&first, &layout);
    first.finalize().unwrap();

    let status = service.terminate(Duration::from_secs(30));
    assert!(status.success(), "the service exited with {status}");
}

#[test]
fn a_connection_to_a_missing_socket_is_an_io_error() {
    let dir = TempDir::new("no-service");
    let err = v1::ImageProxy::connect(&format!(
        "unix:{}",
        dir.path().join("absent.sock").display()
    ))
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let err = v1::ImageProxy::connect("tcp:localhost:1").unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}
