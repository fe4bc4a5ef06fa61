//! The data side of GetBlob (a pipe plus FinishPipe) and of GetRawBlob (data and error pipes).
//!
//! The server keeps a GetBlob pipe open until FinishPipe, and FinishPipe waits until the copy
//! into the pipe has ended. Reading to end-of-file before finishing would therefore wait
//! forever, and finishing before reading would too once the pipe is full. [`BlobReader`]
//! avoids both:
//! - it knows the size that was asked for (which the server enforces) and reports end of data
//!   after exactly that many bytes, closing its read end, so "read everything, then finish"
//!   works without the server closing anything;
//! - if the pipe stays empty for the stall timeout while bytes are still missing (a blob
//!   shorter than announced), it sends FinishPipe from a helper thread; the server then
//!   closes the pipe and the reader reports the short end;
//! - [`FinishHandle::finish`] called while the reader is still open either closes it, when
//!   the finishing thread is the one that last read it (it cannot be reading now), or else
//!   sends FinishPipe from a helper thread so that another thread may go on reading; a reader
//!   nobody has started reading is closed once the stall timeout passes. A closed reader
//!   makes the server's copy fail with EPIPE instead of blocking on a full pipe.
//!
//! FinishPipe is only sent once the data is in, so several blobs can be read at once.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::io::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::session::Inner;

enum FinishState {
    NotStarted,
    Running,
    /// The result, until the FinishHandle takes it.
    Done(Option<Result<()>>),
}

struct PipeState {
    /// None while a read is using it (`reading`), or for good once closed.
    file: Option<File>,
    reading: bool,
    /// When a read last started or ended: how long the reader has been idle.
    last_activity: Instant,
    /// The thread that last read, None before the first read.
    last_reader: Option<ThreadId>,
    received: u64,
    expected: u64,
    finish: FinishState,
}

struct PipeShared {
    pipeid: u64,
    stall_timeout: Duration,
    proxy: Arc<Inner>,
    state: Mutex<PipeState>,
    changed: Condvar,
}

impl PipeShared {
    fn lock(&self) -> MutexGuard<'_, PipeState> {
        // Nothing in PipeState can be left half-updated by a panic, so poisoning is moot.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn complete(&self, result: Result<()>) {
        self.lock().finish = FinishState::Done(Some(result));
        self.changed.notify_all();
    }

    /// Sends FinishPipe from a helper thread unless it is already under way; false if no
    /// thread could be started.
    fn start_finish_in_background(self: &Arc<Self>) -> bool {
        {
            let mut state = self.lock();
            if !matches!(state.finish, FinishState::NotStarted) {
                return true;
            }
            state.finish = FinishState::Running;
        }
        let shared = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name("layerpipe-finish".into())
            .spawn(move || {
                let result = shared.proxy.finish_pipe(shared.pipeid);
                shared.complete(result);
            });
        if spawned.is_err() {
            self.lock().finish = FinishState::NotStarted;
            return false;
        }
        true
    }
}

/// Reads one blob. Reports end of data after exactly the size passed to `get_blob`.
///
/// A blob that ends early yields an [`io::ErrorKind::UnexpectedEof`] error; the reason
/// comes from [`FinishHandle::finish`].
pub struct BlobReader {
    shared: Arc<PipeShared>,
    reported_size: Option<u64>,
}

/// Ends a GetBlob transfer with FinishPipe and returns the server's verdict on it (size and
/// digest checks). Dropping it without calling `finish` still sends FinishPipe.
pub struct FinishHandle {
    shared: Arc<PipeShared>,
    finished: bool,
}

pub(crate) fn blob_pipe(
    proxy: Arc<Inner>,
    pipeid: u64,
    file: File,
    expected: u64,
    reported_size: Option<u64>,
    stall_timeout: Duration,
) -> (BlobReader, FinishHandle) {
    let shared = Arc::new(PipeShared {
        pipeid,
        stall_timeout,
        proxy,
        state: Mutex::new(PipeState {
            file: Some(file),
            reading: false,
            last_activity: Instant::now(),
            last_reader: None,
            received: 0,
            expected,
            finish: FinishState::NotStarted,
        }),
        changed: Condvar::new(),
    });
    let reader = BlobReader {
        shared: Arc::clone(&shared),
        reported_size,
    };
    let finish = FinishHandle {
        shared,
        finished: false,
    };
    (reader, finish)
}

impl BlobReader {
    /// The blob's size as the image source reports it (`None` when it does not know).
    pub fn reported_size(&self) -> Option<u64> {
        self.reported_size
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        let state = self.shared.lock();
        state.expected - state.received
    }

    /// Waits for data (or end of file) on the pipe, then reads once.
    fn read_when_ready(&self, file: &File, buf: &mut [u8]) -> io::Result<usize> {
        let timeout_ms = self
            .shared
            .stall_timeout
            .as_millis()
            .clamp(1, i32::MAX as u128) as libc::c_int;
        loop {
            let mut poll_fd = libc::pollfd {
                fd: file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut poll_fd, 1, timeout_ms) };
            if ready < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if ready == 0 {
                self.shared.start_finish_in_background();
                continue;
            }
            let mut reader = file;
            match reader.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        let remaining = state.expected - state.received;
        if remaining == 0 {
            // Close now: extra bytes from the server then fail its copy instead of blocking it.
            state.file = None;
            return Ok(0);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let file = match state.file.take() {
            Some(file) => file,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "blob pipe closed after {} of {} bytes",
                        state.received, state.expected
                    ),
                ))
            }
        };
        state.reading = true;
        state.last_activity = Instant::now();
        state.last_reader = Some(thread::current().id());
        drop(state);

        let wanted = remaining.min(buf.len() as u64) as usize;
        let result = self.read_when_ready(&file, &mut buf[..wanted]);

        let mut state = self.shared.lock();
        state.reading = false;
        state.last_activity = Instant::now();
        let outcome = match result {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the proxy ended the blob after {} of {} bytes (FinishHandle::finish tells why)",
                    state.received, state.expected
                ),
            )),
            Ok(n) => {
                state.received += n as u64;
                if state.received < state.expected {
                    state.file = Some(file);
                }
                Ok(n)
            }
            Err(e) => {
                state.file = Some(file);
                Err(e)
            }
        };
        drop(state);
        // A finish() waiting on an open reader wants to know.
        self.shared.changed.notify_all();
        outcome
    }
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        self.shared.lock().file = None;
        self.shared.changed.notify_all();
    }
}

impl FinishHandle {
    /// Sends FinishPipe (unless the reader already had to) and returns the transfer's result:
    /// `Ok` only if the server delivered exactly the requested size with the right digest.
    ///
    /// Call it after reading the blob to its end, or while another thread reads it. It does
    /// not hang on a reader left open: one this thread was reading is closed at once, one
    /// nobody has read yet after the stall timeout; the transfer then fails with EPIPE. A
    /// reader another thread has been reading is left to that thread.
    pub fn finish(mut self) -> Result<()> {
        self.finished = true;
        self.run_finish()
    }

    fn run_finish(&self) -> Result<()> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if !state.reading && state.last_reader == Some(thread::current().id()) {
            // This thread read it and is now here: nobody will read the rest.
            state.file = None;
        }
        if matches!(state.finish, FinishState::NotStarted) {
            if state.file.is_none() && !state.reading {
                // The usual case: the data is in, FinishPipe answers at once.
                state.finish = FinishState::Running;
                drop(state);
                return self.finish_inline();
            }
            drop(state);
            if !shared.start_finish_in_background() {
                // No helper thread: close the reader so that an inline FinishPipe cannot hang.
                let mut state = shared.lock();
                if !state.reading {
                    state.file = None;
                }
                if matches!(state.finish, FinishState::NotStarted) {
                    state.finish = FinishState::Running;
                    drop(state);
                    return self.finish_inline();
                }
            }
            state = shared.lock();
        }
        loop {
            if let FinishState::Done(result) = &mut state.finish {
                return result.take().unwrap_or(Ok(()));
            }
            let idle = state.last_activity.elapsed();
            let never_read = state.last_reader.is_none() && !state.reading;
            if never_read && state.file.is_some() && idle >= shared.stall_timeout {
                // Nobody started reading: let the server's copy fail rather than wait forever.
                state.file = None;
            }
            let wait = shared
                .stall_timeout
                .saturating_sub(idle)
                .max(Duration::from_millis(10));
            state = shared
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    fn finish_inline(&self) -> Result<()> {
        let result = self.shared.proxy.finish_pipe(self.shared.pipeid);
        self.shared.complete(Ok(()));
        result
    }
}

impl Drop for FinishHandle {
    fn drop(&mut self) {
        if !self.finished {
            // The server keeps per-pipe state until FinishPipe; the verdict is unwanted.
            let _ = self.run_finish();
        }
    }
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("BlobReader")
            .field("pipeid", &self.shared.pipeid)
            .field("received", &state.received)
            .field("expected", &state.expected)
            .finish()
    }
}

impl std::fmt::Debug for FinishHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishHandle")
            .field("pipeid", &self.shared.pipeid)
            .finish()
    }
}
