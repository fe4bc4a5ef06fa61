//! The client against a scripted peer on a socket pair: dispatch by id with responses out of
//! order, fds on response packets, in-band streams under credit, and a peer that goes away.
//! No server is needed; tests/protocol_1.rs runs the real one.

use std::fs::File;
use std::io::{Read, Write};
use std::mem;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Barrier};
use std::thread;

use serde_json::{json, Value};

use super::{ImageProxy, Options, Payload};
use crate::channel::{recv_packet, seqpacket_pair};
use crate::error::{Error, ErrorCode, RpcErrorCode};

/// The server side of the pair.
struct Peer {
    socket: OwnedFd,
    buffer: Vec<u8>,
}

impl Peer {
    fn recv(&mut self) -> Option<Value> {
        let (n, _) = recv_packet(self.socket.as_raw_fd(), &mut self.buffer).ok()?;
        Some(serde_json::from_slice(&self.buffer[..n]).unwrap())
    }

    fn send(&self, message: Value, fds: &[RawFd]) {
        send_with_fds(self.socket.as_raw_fd(), message.to_string().as_bytes(), fds);
    }

    fn answer(&self, request: &Value, result: Value) {
        self.send(
            json!({"jsonrpc": "2.0", "id": request["id"], "result": result}),
            &[],
        );
    }

    /// Answers Initialize with `payload`.
    fn initialize(&mut self, payload: &str) {
        let request = self.recv().unwrap();
        assert_eq!(request["method"], "Initialize");
        assert_eq!(request["params"]["protocolVersion"], "1.0");
        self.answer(
            &request,
            json!({"protocolVersion": "1.0.0", "server": {"name": "layerpipe", "version": "test"},
                   "methods": ["OpenImage", "GetBlob"], "payload": payload, "window": 65536}),
        );
    }
}

fn send_with_fds(socket: RawFd, bytes: &[u8], fds: &[RawFd]) {
    let fd_bytes = mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as libc::c_uint) } as usize;
    let mut control = vec![0u64; (space + 7) / 8];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain data; the pointers below stay alive for the call.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer holds one cmsghdr with room for fds.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as libc::c_uint) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg) as *mut RawFd,
                fds.len(),
            );
        }
    }
    // SAFETY: msg describes live buffers.
    let sent = unsafe { libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) };
    assert!(sent >= 0, "sendmsg: {}", std::io::Error::last_os_error());
}

fn pipe() -> (File, File) {
    let mut fds = [-1; 2];
    // SAFETY: fds has room for two.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are new and ours.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

/// A client connected to a peer that runs `script` on its own thread.
fn with_peer(
    payloads: Vec<Payload>,
    script: impl FnOnce(Peer) + Send + 'static,
) -> (ImageProxy, thread::JoinHandle<()>) {
    with_peer_options(
        Options {
            payloads,
            ..Default::default()
        },
        script,
    )
}

fn with_peer_options(
    options: Options,
    script: impl FnOnce(Peer) + Send + 'static,
) -> (ImageProxy, thread::JoinHandle<()>) {
    let (ours, theirs) = seqpacket_pair().unwrap();
    let peer = thread::spawn(move || {
        script(Peer {
            socket: theirs,
            buffer: vec![0; 1 << 20],
        })
    });
    let proxy = ImageProxy::over_socket(ours, options).unwrap();
    (proxy, peer)
}

#[test]
fn concurrent_calls_get_their_own_answers_whatever_the_order() {
    const THREADS: usize = 16;
    let (proxy, peer) = with_peer(vec![Payload::Fd], |mut peer| {
        peer.initialize("fd");
        let mut requests: Vec<Value> = (0..THREADS).map(|_| peer.recv().unwrap()).collect();
        // Answer in reverse order of arrival; each image id is derived from the reference.
        requests.reverse();
        for request in &requests {
            let reference = request["params"]["reference"].as_str().unwrap();
            let n: u64 = reference.trim_start_matches("ref-").parse().unwrap();
            if n == 3 {
                peer.send(
                    json!({"jsonrpc": "2.0", "id": request["id"],
                           "error": {"code": -32001, "message": "no such image", "data": {"error_code": "other"}}}),
                    &[],
                );
            } else {
                peer.answer(request, json!({"image": 100 + n}));
            }
        }
        assert!(peer.recv().is_none(), "the client closes at the end");
    });
    assert_eq!(proxy.server().payload, Payload::Fd);
    assert_eq!(proxy.server().window, 65536);
    assert!(proxy.supports("GetBlob") && !proxy.supports("ListTags"));
    let barrier = Barrier::new(THREADS);
    thread::scope(|scope| {
        for n in 0..THREADS as u64 {
            let (proxy, barrier) = (&proxy, &barrier);
            scope.spawn(move || {
                barrier.wait();
                let answer = proxy.open_image(&format!("ref-{n}"));
                if n == 3 {
                    let err = answer.unwrap_err();
                    assert_eq!(err.rpc_code(), Some(RpcErrorCode::ImageNotFound), "{err:?}");
                    assert_eq!(err.error_code(), Some(ErrorCode::Other));
                } else {
                    assert_eq!(answer.unwrap().id(), 100 + n);
                }
            });
        }
    });
    drop(proxy);
    peer.join().unwrap();
}

#[test]
fn an_fd_transfer_reads_the_pipe_and_finish_reports_the_verdict() {
    let (proxy, peer) = with_peer(vec![Payload::Fd], |mut peer| {
        peer.initialize("fd");
        for (transfer, verdict) in [
            (7u64, Value::Null),
            (8, json!({"code": -32004, "message": "digest mismatch"})),
        ] {
            let request = peer.recv().unwrap();
            assert_eq!(request["method"], "GetBlob");
            assert_eq!(
                request["params"],
                json!({"image": 1, "digest": "sha256:abc", "size": 11})
            );
            let (reader, mut writer) = pipe();
            peer.send(
                json!({"jsonrpc": "2.0", "id": request["id"], "result": {"transfer": transfer, "size": 11}}),
                &[reader.as_raw_fd()],
            );
            drop(reader);
            // All bytes first, and the pipe stays open: the client stops at the size.
            writer.write_all(b"hello world").unwrap();
            let finish = peer.recv().unwrap();
            assert_eq!(finish["method"], "FinishTransfer");
            assert_eq!(finish["params"], json!({"transfer": transfer}));
            drop(writer);
            if verdict.is_null() {
                peer.answer(&finish, Value::Null);
            } else {
                peer.send(
                    json!({"jsonrpc": "2.0", "id": finish["id"], "error": verdict}),
                    &[],
                );
            }
        }
        assert!(peer.recv().is_none());
    });
    let image = super::OpenedImage(1);
    let mut data = Vec::new();
    let n = proxy
        .copy_blob(&image, "sha256:abc", Some(11), &mut data)
        .unwrap();
    assert_eq!((n, data.as_slice()), (11, &b"hello world"[..]));
    let mut transfer = proxy.get_blob(&image, "sha256:abc", Some(11)).unwrap();
    assert_eq!((transfer.id(), transfer.size()), (8, Some(11)));
    let mut bytes = Vec::new();
    transfer.read_to_end(&mut bytes).unwrap();
    assert_eq!(
        bytes, b"hello world",
        "no byte is withheld before the verdict"
    );
    let err = transfer.finish().unwrap_err();
    assert_eq!(
        err.rpc_code(),
        Some(RpcErrorCode::VerificationFailed),
        "{err:?}"
    );
    drop(proxy);
    peer.join().unwrap();
}

#[test]
fn a_stream_transfer_arrives_under_credit_and_ends_with_its_error() {
    let total = 12 * 16 * 1024;
    let (proxy, peer) = with_peer(vec![Payload::Stream, Payload::Fd], move |mut peer| {
        peer.initialize("stream");
        let request = peer.recv().unwrap();
        assert_eq!(request["params"]["progress"], true);
        peer.answer(&request, json!({"transfer": 4, "size": total}));
        let chunk = vec![b'x'; 16 * 1024];
        let encoded = encode_base64(&chunk);
        let (mut sent, mut window) = (0usize, 65536usize);
        while sent < total {
            while window >= chunk.len() && sent < total {
                peer.send(json!({"jsonrpc": "2.0", "method": "transfer/data", "params": {"transfer": 4, "data": encoded}}), &[]);
                sent += chunk.len();
                window -= chunk.len();
                peer.send(json!({"jsonrpc": "2.0", "method": "transfer/progress", "params": {"transfer": 4, "bytes": sent, "total": total}}), &[]);
            }
            if sent < total {
                let credit = peer.recv().unwrap();
                assert_eq!(credit["method"], "transfer/credit");
                assert!(credit.get("id").is_none());
                window += credit["params"]["bytes"].as_u64().unwrap() as usize;
                assert!(window <= 65536, "credit only for bytes read");
            }
        }
        peer.send(json!({"jsonrpc": "2.0", "method": "transfer/end", "params": {"transfer": 4,
            "error": {"code": -32004, "message": "digest mismatch", "data": {"error_code": "other"}}}}), &[]);
        loop {
            let message = peer.recv().unwrap();
            if message["method"] == "FinishTransfer" {
                peer.send(json!({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32004, "message": "digest mismatch"}}), &[]);
                break;
            }
        }
        assert!(peer.recv().is_none());
    });
    assert_eq!(proxy.server().payload, Payload::Stream);
    let seen = Arc::new(std::sync::Mutex::new(0u64));
    let record = Arc::clone(&seen);
    let mut transfer = proxy
        .get_blob_with_progress(&super::OpenedImage(1), "sha256:abc", None, move |p| {
            *record.lock().unwrap() = p.bytes;
        })
        .unwrap();
    let mut data = Vec::new();
    let err = transfer.read_to_end(&mut data).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert_eq!(data.len(), total, "every byte before the error");
    assert_eq!(*seen.lock().unwrap(), total as u64);
    let err = transfer.finish().unwrap_err();
    assert_eq!(err.rpc_code(), Some(RpcErrorCode::VerificationFailed));
    drop(proxy);
    peer.join().unwrap();
}

#[test]
fn a_peer_that_goes_away_fails_waiting_and_later_calls() {
    let (proxy, peer) = with_peer(vec![Payload::Fd], |mut peer| {
        peer.initialize("fd");
        let _ = peer.recv().unwrap();
        // Gone without answering.
    });
    let err = proxy.open_image("ref").unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
    peer.join().unwrap();
    let err = proxy.list_tags("docker://x/y").unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
    // Refused before sending: bad params never reach the wire.
    assert!(matches!(
        proxy.call_method("NoSuchMethod", Default::default()),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn a_request_past_the_timeout_is_cancelled_and_fails_with_cancelled() {
    let options = Options {
        timeout: Some(std::time::Duration::from_millis(200)),
        ..Default::default()
    };
    let (proxy, peer) = with_peer_options(options, |mut peer| {
        peer.initialize("fd");
        let slow = peer.recv().unwrap();
        assert_eq!(slow["method"], "OpenImage");
        let cancel = peer.recv().unwrap();
        assert_eq!(cancel["method"], "$/cancelRequest");
        assert_eq!(cancel["params"], json!({"id": slow["id"]}));
        assert!(cancel.get("id").is_none());
        peer.send(json!({"jsonrpc": "2.0", "id": slow["id"], "error": {"code": -32800, "message": "cancelled"}}), &[]);
        // A quick answer is not cancelled.
        let quick = peer.recv().unwrap();
        peer.answer(&quick, json!({"image": 2}));
        assert!(peer.recv().is_none());
    });
    let err = proxy.open_image("slow").unwrap_err();
    assert_eq!(err.rpc_code(), Some(RpcErrorCode::Cancelled), "{err:?}");
    assert_eq!(proxy.open_image("quick").unwrap().id(), 2);
    drop(proxy);
    peer.join().unwrap();
}

fn encode_base64(bytes: &[u8]) -> String {
    const SYMBOLS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let word = group
            .iter()
            .enumerate()
            .fold(0u32, |w, (i, &b)| w | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= group.len() {
                out.push(SYMBOLS[(word >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn the_test_encoder_round_trips_through_the_decoder() {
    for len in 0..8 {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 200) as u8).collect();
        assert_eq!(
            super::base64::decode(&encode_base64(&bytes)).unwrap(),
            bytes
        );
    }
}
