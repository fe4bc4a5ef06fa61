//! What the reader thread keeps for one transfer: in-band chunks (`stream` payloads), how it
//! ended (`transfer/end`), and its progress (`transfer/progress`).

use std::collections::VecDeque;
use std::io;
use std::sync::{Condvar, Mutex};

use serde_json::Value;

use super::base64;
use super::wire::RpcFailure;
use crate::session::lock;

/// Bytes sent so far of a transfer, and its total (`None` when the server does not know it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub bytes: u64,
    pub total: Option<u64>,
}

/// Called on the connection's reader thread for each `transfer/progress`: keep it short, and
/// do not call the proxy from it (its answer would wait for this very thread).
pub type ProgressCallback = Box<dyn FnMut(Progress) + Send>;

/// How a transfer ended, as far as the notifications tell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ending {
    Complete,
    Failed(RpcFailure),
    /// The connection ended, or the server broke the protocol for this transfer.
    Broken(String),
}

#[derive(Default)]
struct SlotState {
    chunks: VecDeque<Vec<u8>>,
    ending: Option<Ending>,
    progress: Option<Progress>,
}

#[derive(Default)]
pub(crate) struct TransferSlot {
    state: Mutex<SlotState>,
    changed: Condvar,
    callback: Mutex<Option<ProgressCallback>>,
}

impl TransferSlot {
    pub(crate) fn with_callback(callback: Option<ProgressCallback>) -> TransferSlot {
        TransferSlot {
            callback: Mutex::new(callback),
            ..TransferSlot::default()
        }
    }

    fn set_ending(&self, ending: Ending) {
        let mut state = lock(&self.state);
        if state.ending.is_none() {
            state.ending = Some(ending);
        }
        drop(state);
        self.changed.notify_all();
    }

    /// `transfer/data`: the next chunk, in order.
    pub(crate) fn data(&self, params: &Value) {
        match params
            .get("data")
            .and_then(Value::as_str)
            .and_then(base64::decode)
        {
            Some(bytes) => {
                let mut state = lock(&self.state);
                if state.ending.is_none() && !bytes.is_empty() {
                    state.chunks.push_back(bytes);
                }
                drop(state);
                self.changed.notify_all();
            }
            None => self.set_ending(Ending::Broken(
                "transfer/data carried no valid base64 data".into(),
            )),
        }
    }

    /// `transfer/end`, with or without an error.
    pub(crate) fn end(&self, params: &Value) {
        let ending = match params.get("error") {
            None | Some(Value::Null) => Ending::Complete,
            Some(error) => match RpcFailure::from_value(error) {
                Some(failure) => Ending::Failed(failure),
                None => Ending::Broken(format!("transfer/end carried a malformed error: {error}")),
            },
        };
        self.set_ending(ending);
    }

    /// `transfer/progress`: remembered, and passed to the callback if there is one.
    pub(crate) fn progress(&self, params: &Value) {
        let bytes = match params.get("bytes").and_then(Value::as_u64) {
            Some(bytes) => bytes,
            None => return,
        };
        let progress = Progress {
            bytes,
            total: params.get("total").and_then(Value::as_u64),
        };
        lock(&self.state).progress = Some(progress);
        if let Some(callback) = lock(&self.callback).as_mut() {
            callback(progress);
        }
    }

    pub(crate) fn connection_closed(&self, reason: &str) {
        self.set_ending(Ending::Broken(format!("connection closed: {reason}")));
    }

    pub(crate) fn latest_progress(&self) -> Option<Progress> {
        lock(&self.state).progress
    }

    pub(crate) fn ending(&self) -> Option<Ending> {
        lock(&self.state).ending.clone()
    }

    /// Copies the next in-band bytes into `buf`, waiting for them; 0 at a complete end. An end
    /// with an error is reported once the chunks before it were read.
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = lock(&self.state);
        loop {
            if let Some(chunk) = state.chunks.front_mut() {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                if n == chunk.len() {
                    state.chunks.pop_front();
                } else {
                    chunk.drain(..n);
                }
                return Ok(n);
            }
            match &state.ending {
                Some(Ending::Complete) => return Ok(0),
                Some(Ending::Failed(failure)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::Other,
                        format!("{} (FinishTransfer reports it)", failure.message),
                    ))
                }
                Some(Ending::Broken(why)) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, why.clone()))
                }
                None => {}
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn hands_chunks_over_in_order_then_the_end() {
        let slot = Arc::new(TransferSlot::default());
        let writer = Arc::clone(&slot);
        let feeder = thread::spawn(move || {
            writer.data(&json!({"transfer": 1, "data": "aGVsbG8g"}));
            writer.data(&json!({"transfer": 1, "data": "d29ybGQ="}));
            writer.end(&json!({"transfer": 1}));
        });
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = slot.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        feeder.join().unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(slot.ending(), Some(Ending::Complete));
    }

    #[test]
    fn an_error_end_comes_after_the_bytes_sent_before_it() {
        let slot = TransferSlot::default();
        slot.data(&json!({"transfer": 1, "data": "AAE="}));
        slot.end(&json!({"transfer": 1, "error": {"code": -32004, "message": "digest mismatch"}}));
        let mut buf = [0u8; 8];
        assert_eq!(slot.read(&mut buf).unwrap(), 2);
        let err = slot.read(&mut buf).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        slot.data(&json!({"transfer": 1, "data": "!!"}));
        assert!(matches!(
            slot.ending(),
            Some(Ending::Failed(RpcFailure { code: -32004, .. }))
        ));
    }

    #[test]
    fn progress_reaches_the_callback() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let slot =
            TransferSlot::with_callback(Some(Box::new(move |p| sink.lock().unwrap().push(p))));
        slot.progress(&json!({"transfer": 1, "bytes": 10, "total": 20}));
        slot.progress(&json!({"transfer": 1, "bytes": 20, "total": -1}));
        assert_eq!(
            slot.latest_progress(),
            Some(Progress {
                bytes: 20,
                total: None
            })
        );
        assert_eq!(seen.lock().unwrap().len(), 2);
    }
}
