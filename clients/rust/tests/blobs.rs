//! GetBlob / FinishPipe / GetRawBlob against a real proxy: data, verdicts, concurrency.

mod common;

use std::fs;
use std::io::{ErrorKind, Read};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use common::{Blob, Layout};
use layerpipe::{Error, ErrorCode, ImageProxy, OpenedImage, ProtocolVersion};

fn read_blob(proxy: &ImageProxy, image: &OpenedImage, blob: &Blob) -> Vec<u8> {
    let (mut reader, finish) = proxy.get_blob(image, &blob.digest, blob.size()).unwrap();
    assert_eq!(reader.reported_size(), Some(blob.size()));
    let mut data = Vec::new();
    reader.read_to_end(&mut data).unwrap();
    finish.finish().unwrap();
    data
}

#[test]
fn every_blob_reads_back_byte_for_byte() {
    let program = require_proxy!("every_blob_reads_back_byte_for_byte");
    let layout = Layout::build();
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    for blob in layout.layers.iter().chain(Some(&layout.config)) {
        let data = read_blob(&proxy, &image, blob);
        assert!(data == blob.bytes, "{} differs", blob.digest);
        let mut copied = Vec::new();
        let n = proxy
            .copy_blob(&image, &blob.digest, blob.size(), &mut copied)
            .unwrap();
        assert_eq!(n, blob.size());
        assert!(copied == blob.bytes);
    }
    proxy.finalize().unwrap();
}

#[test]
fn two_blobs_larger_than_a_pipe_can_be_read_interleaved_in_one_thread() {
    let program =
        require_proxy!("two_blobs_larger_than_a_pipe_can_be_read_interleaved_in_one_thread");
    let layout = Layout::build();
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    let (big, other) = (&layout.layers[1], &layout.layers[2]);
    let (mut big_reader, big_finish) = proxy.get_blob(&image, &big.digest, big.size()).unwrap();
    let (mut other_reader, other_finish) =
        proxy.get_blob(&image, &other.digest, other.size()).unwrap();
    // Part of the first, all of the second, then the rest of the first.
    let mut head = vec![0u8; 100_000];
    big_reader.read_exact(&mut head).unwrap();
    let mut other_data = Vec::new();
    other_reader.read_to_end(&mut other_data).unwrap();
    other_finish.finish().unwrap();
    // A request in between is answered while the first blob is still open.
    assert_eq!(
        proxy.fetch_manifest(&image).unwrap().0,
        layout.manifest.digest
    );
    let mut rest = Vec::new();
    big_reader.read_to_end(&mut rest).unwrap();
    big_finish.finish().unwrap();
    head.extend_from_slice(&rest);
    assert!(head == big.bytes);
    assert!(other_data == other.bytes);
    proxy.finalize().unwrap();
}

#[test]
fn finish_may_run_while_another_thread_is_still_reading() {
    let program = require_proxy!("finish_may_run_while_another_thread_is_still_reading");
    let layout = Layout::build();
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    let big = &layout.layers[1];
    let (mut reader, finish) = proxy.get_blob(&image, &big.digest, big.size()).unwrap();
    let data = thread::scope(|scope| {
        let consumer = scope.spawn(move || {
            let mut data = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = reader.read(&mut chunk).unwrap();
                if n == 0 {
                    return data;
                }
                // A slow consumer: the finishing thread sees the reader idle between reads,
                // once for longer than the stall timeout.
                let pause = if data.is_empty() { 700 } else { 20 };
                data.extend_from_slice(&chunk[..n]);
                thread::sleep(Duration::from_millis(pause));
            }
        });
        // The reference client's pattern: finish concurrently with reading.
        finish.finish().unwrap();
        consumer.join().unwrap()
    });
    assert!(data == big.bytes);
    proxy.finalize().unwrap();
}

#[test]
fn threads_share_one_proxy_and_fetch_blobs_at_once() {
    let program = require_proxy!("threads_share_one_proxy_and_fetch_blobs_at_once");
    let layout = Layout::build();
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    let threads = 4;
    let barrier = Barrier::new(threads);
    thread::scope(|scope| {
        for t in 0..threads {
            let (proxy, image, layout, barrier) = (&proxy, &image, &layout, &barrier);
            scope.spawn(move || {
                barrier.wait();
                for round in 0..3 {
                    // Each thread walks the layers in a different order.
                    let blob = &layout.layers[(t + round) % layout.layers.len()];
                    let data = read_blob(proxy, image, blob);
                    assert_eq!(
                        common::digest_of(&data),
                        blob.digest,
                        "thread {t} round {round}"
                    );
                }
                // Every thread also opens and closes its own image.
                let own = proxy.open_image(&layout.reference()).unwrap();
                assert_eq!(proxy.fetch_config(&own).unwrap(), layout.config_json);
                proxy.close_image(&own).unwrap();
            });
        }
    });
    proxy.finalize().unwrap();
}

#[test]
fn unknown_or_malformed_digests_are_errors_and_the_proxy_keeps_serving() {
    let program =
        require_proxy!("unknown_or_malformed_digests_are_errors_and_the_proxy_keeps_serving");
    let layout = Layout::build();
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    let absent = format!("sha256:{}", "0".repeat(64));
    for digest in [absent.as_str(), "sha256:not-hex", "nonsense"] {
        // The failure may come with the reply or, for a lazy server, at finish; never data.
        let outcome = proxy.get_blob(&image, digest, 10).and_then(
            |(mut reader, finish)| -> layerpipe::Result<()> {
                let mut data = Vec::new();
                let read = reader.read_to_end(&mut data);
                drop(reader);
                finish.finish()?;
                panic!("{digest}: fetched {} bytes ({read:?})", data.len());
            },
        );
        let err = outcome.unwrap_err();
        assert!(matches!(err, Error::Proxy { .. }), "{digest}: {err:?}");
        assert!(!err.is_retryable(), "{digest}: {err:?}");
    }
    assert_eq!(
        read_blob(&proxy, &image, &layout.layers[0]),
        layout.layers[0].bytes
    );
    proxy.finalize().unwrap();
}

/// Overwrites a stored blob; returns the bytes written.
fn tamper(layout: &Layout, blob: &Blob, bytes: Vec<u8>) -> Vec<u8> {
    fs::write(layout.blob_path(&blob.digest), &bytes).unwrap();
    bytes
}

#[test]
fn a_corrupted_blob_is_reported_at_finish() {
    let program = require_proxy!("a_corrupted_blob_is_reported_at_finish");
    let layout = Layout::build();
    let blob = &layout.layers[1];
    let mut bad = blob.bytes.clone();
    bad[blob.bytes.len() / 2] ^= 0xff;
    tamper(&layout, blob, bad);
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    let (mut reader, finish) = proxy.get_blob(&image, &blob.digest, blob.size()).unwrap();
    let mut data = Vec::new();
    // Clients that read exactly `size` bytes before FinishPipe rely on every byte arriving:
    // skopeo sends them all and only then fails FinishPipe. (This reader would get over a
    // withheld tail after its stall timeout; simpler clients hang.)
    if let Err(e) = reader.read_to_end(&mut data) {
        panic!(
            "the proxy withheld the end of a corrupted blob ({} of {} bytes came: {e}); \
             clients that read `size` bytes before FinishPipe would hang",
            data.len(),
            blob.size()
        );
    }
    assert!(data == fs::read(layout.blob_path(&blob.digest)).unwrap());
    let err = finish.finish().unwrap_err();
    assert!(
        matches!(err, Error::Proxy { ref method, .. } if method == "FinishPipe"),
        "{err:?}"
    );
    let text = err.to_string().to_lowercase();
    assert!(text.contains("corrupt") || text.contains("digest"), "{err}");
    // copy_blob gives the same verdict.
    let err = proxy
        .copy_blob(&image, &blob.digest, blob.size(), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, Error::Proxy { .. }), "{err:?}");
    proxy.finalize().unwrap();
}

#[test]
fn a_blob_shorter_than_announced_ends_the_read_instead_of_hanging() {
    let program = require_proxy!("a_blob_shorter_than_announced_ends_the_read_instead_of_hanging");
    let layout = Layout::build();
    let blob = &layout.layers[1];
    tamper(&layout, blob, blob.bytes[..blob.bytes.len() / 3].to_vec());
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    let started = Instant::now();
    let (mut reader, finish) = proxy.get_blob(&image, &blob.digest, blob.size()).unwrap();
    let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    assert!(finish.finish().is_err());
    assert!(started.elapsed() < Duration::from_secs(30));
    // Asking for more bytes than an intact blob has fails the same way.
    let other = &layout.layers[2];
    let err = proxy.copy_blob(&image, &other.digest, other.size() + 1000, &mut Vec::new());
    assert!(matches!(err, Err(Error::Proxy { .. })), "{err:?}");
    // And asking for fewer is a failure too. The reader never goes past the size asked for;
    // it ends there (skopeo sends on) or short (a server that stops at the overflow).
    let (mut reader, finish) = proxy
        .get_blob(&image, &other.digest, other.size() - 1000)
        .unwrap();
    let mut data = Vec::new();
    match reader.read_to_end(&mut data) {
        Ok(n) => assert_eq!(n as u64, other.size() - 1000),
        Err(e) => assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{e}"),
    }
    assert!(data.len() as u64 <= other.size() - 1000);
    let err = finish.finish().unwrap_err();
    assert!(matches!(err, Error::Proxy { .. }), "{err:?}");
    proxy.finalize().unwrap();
}

#[test]
fn finishing_without_reading_fails_with_broken_pipe_instead_of_hanging() {
    let program =
        require_proxy!("finishing_without_reading_fails_with_broken_pipe_instead_of_hanging");
    let layout = Layout::build();
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    let big = &layout.layers[1];
    let (mut reader, finish) = proxy.get_blob(&image, &big.digest, big.size()).unwrap();
    let mut head = [0u8; 1000];
    reader.read_exact(&mut head).unwrap();
    let err = finish.finish().unwrap_err();
    // ostree recognises this case by the text's ending.
    assert!(err.to_string().ends_with("broken pipe"), "{err}");
    if proxy.protocol_version() >= ProtocolVersion::new(0, 2, 8) {
        assert_eq!(err.error_code(), Some(ErrorCode::Epipe), "{err:?}");
    }
    // The reader was closed by finish and says so.
    assert!(reader.read(&mut head).is_err());
    drop(reader);

    // Not read at all: closed after the stall timeout.
    let (_reader, finish) = proxy.get_blob(&image, &big.digest, big.size()).unwrap();
    let err = finish.finish().unwrap_err();
    assert!(err.to_string().ends_with("broken pipe"), "{err}");

    // Dropping both halves unread is fine too, and the proxy goes on serving.
    let (reader, finish) = proxy.get_blob(&image, &big.digest, big.size()).unwrap();
    drop(reader);
    drop(finish);
    assert_eq!(read_blob(&proxy, &image, big), big.bytes);
    proxy.finalize().unwrap();
}

#[test]
fn raw_blobs_come_unverified_with_an_error_side() {
    let program = require_proxy!("raw_blobs_come_unverified_with_an_error_side");
    let layout = Layout::build();
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    let blob = &layout.layers[1];
    if proxy.protocol_version() < ProtocolVersion::new(0, 2, 8) {
        let err = proxy.get_raw_blob(&image, &blob.digest).unwrap_err();
        assert!(
            matches!(
                err,
                Error::MethodUnsupported {
                    method: "GetRawBlob",
                    ..
                }
            ),
            "{err:?}"
        );
        eprintln!(
            "proxy speaks {}: GetRawBlob checked to be refused locally",
            proxy.protocol_version()
        );
        proxy.finalize().unwrap();
        return;
    }
    // Several at once, read on threads, with no FinishPipe involved.
    thread::scope(|scope| {
        for blob in &layout.layers {
            let (proxy, image) = (&proxy, &image);
            scope.spawn(move || {
                let (size, mut data, errors) = proxy.get_raw_blob(image, &blob.digest).unwrap();
                assert_eq!(size, Some(blob.size()));
                let mut bytes = Vec::new();
                data.read_to_end(&mut bytes).unwrap();
                errors.finish().unwrap();
                assert!(bytes == blob.bytes);
            });
        }
    });
    // Not verified: tampered bytes are handed over as they are.
    let mut bad = blob.bytes.clone();
    bad[7] ^= 0x55;
    let bad = tamper(&layout, blob, bad);
    let (_, mut data, errors) = proxy.get_raw_blob(&image, &blob.digest).unwrap();
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap();
    errors.finish().unwrap();
    assert!(bytes == bad);

    let absent = format!("sha256:{}", "0".repeat(64));
    assert!(matches!(
        proxy.get_raw_blob(&image, &absent),
        Err(Error::Proxy { .. })
    ));
    proxy.finalize().unwrap();
}
