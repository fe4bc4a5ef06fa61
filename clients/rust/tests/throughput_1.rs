//! A rough figure, not a check (ignored by default): one 128 MiB blob through 0.2.x fd,
//! 1.0 fd and 1.0 stream, in the same run. Run it in release mode:
//!   LAYERPIPE_PROXY_PROGRAM=bin/layerpipe bash .ci/cargo-offline.sh --release --test throughput_1 -- --ignored --nocapture

mod common;

use std::fs;
use std::io::{self, Read};
use std::time::Instant;

use common::Layout;
use layerpipe::v1::{Options, Payload};

const SIZE: usize = 128 << 20;

/// CPU seconds used by this process and by its reaped children.
fn cpu() -> (f64, f64) {
    let seconds = |who| {
        // SAFETY: getrusage fills the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut usage) };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(usage.ru_utime) + t(usage.ru_stime)
    };
    (seconds(libc::RUSAGE_SELF), seconds(libc::RUSAGE_CHILDREN))
}

fn mib_per_s(bytes: usize, started: Instant) -> f64 {
    bytes as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

#[test]
#[ignore]
fn throughput_of_one_large_blob() {
    let program = require_layerpipe!("throughput_of_one_large_blob");
    let layout = Layout::build();
    let bytes = common::noise(SIZE, 9);
    let digest = common::digest_of(&bytes);
    let path = layout.blob_path(&digest);
    fs::write(&path, &bytes).unwrap();
    drop(bytes);

    for round in 0..2 {
        let old = common::start(&program);
        let image = old.open_image(&layout.reference()).unwrap();
        let started = Instant::now();
        let (mut reader, finish) = old.get_blob(&image, &digest, SIZE as u64).unwrap();
        let n = io::copy(&mut reader, &mut io::sink()).unwrap();
        finish.finish().unwrap();
        eprintln!(
            "round {round}: 0.2.x fd  {:7.1} MiB/s",
            mib_per_s(n as usize, started)
        );
        old.finalize().unwrap();

        for payload in [Payload::Fd, Payload::Stream] {
            let window = std::env::var("LAYERPIPE_STREAM_WINDOW")
                .ok()
                .and_then(|w| w.parse().ok());
            let options = Options {
                payloads: vec![payload],
                window,
                ..Default::default()
            };
            let new = common::start_1(&program, options);
            let image = new.open_image(&layout.reference()).unwrap();
            let before = cpu();
            let started = Instant::now();
            let mut transfer = new.get_blob(&image, &digest, Some(SIZE as u64)).unwrap();
            let mut buf = vec![0u8; 256 * 1024];
            let mut n = 0;
            loop {
                let got = transfer.read(&mut buf).unwrap();
                if got == 0 {
                    break;
                }
                n += got;
            }
            transfer.finish().unwrap();
            assert_eq!(n, SIZE);
            let rate = mib_per_s(n, started);
            new.finalize().unwrap();
            let after = cpu();
            eprintln!(
                "round {round}: 1.0 {:6} {rate:7.1} MiB/s (CPU: client {:.2} s, server {:.2} s)",
                payload.as_str(),
                after.0 - before.0,
                after.1 - before.1
            );
        }
    }
}
