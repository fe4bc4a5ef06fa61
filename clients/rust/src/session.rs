//! The connection to one proxy process: request/reply exchanges under one lock, and the
//! process's end.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::io::OwnedFd;
use std::process::Child;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::channel::Channel;
use crate::error::{Error, ErrorCode, Result};
use crate::methods::{self, DataKind, Method};

#[derive(Deserialize)]
struct Reply {
    success: bool,
    value: Value,
    pipeid: u64,
    /// Absent before protocol 0.2.8.
    #[serde(default)]
    error_code: String,
    error: String,
}

pub(crate) struct Answer {
    pub value: Value,
    pub pipeid: u64,
    pub fds: Vec<OwnedFd>,
}

pub(crate) struct ChannelSlot {
    channel: Option<Channel>,
    /// Why `channel` is gone.
    closed_because: String,
}

/// State shared by the proxy handle and the blob handles it gave out.
pub(crate) struct Inner {
    slot: Mutex<ChannelSlot>,
    child: Mutex<Option<Child>>,
    pub stall_timeout: Duration,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves no half-made state: a broken exchange
    // closes the channel before any code that could panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    pub(crate) fn new(channel: Channel, child: Child, stall_timeout: Duration) -> Inner {
        Inner {
            slot: Mutex::new(ChannelSlot {
                channel: Some(channel),
                closed_because: String::new(),
            }),
            child: Mutex::new(Some(child)),
            stall_timeout,
        }
    }

    /// Sends Shutdown, closes the socket and waits for the process to exit with status 0.
    pub(crate) fn shutdown(&self) -> Result<()> {
        let broken = {
            let mut slot = lock(&self.slot);
            let broken = match slot.channel.take() {
                Some(channel) => {
                    let request =
                        json!({ "method": methods::SHUTDOWN.name, "args": [] }).to_string();
                    // No reply comes; a proxy that already left shows in its exit status.
                    let _ = channel.send(request.as_bytes());
                    None
                }
                None => Some(Error::Closed(slot.closed_because.clone())),
            };
            slot.closed_because = "the proxy was finalized".into();
            broken
        };
        if let Some(mut child) = lock(&self.child).take() {
            let status = child
                .wait()
                .map_err(|e| Error::io("waiting for the proxy to exit", e))?;
            if !status.success() {
                return Err(Error::ProxyExited(status));
            }
        }
        match broken {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Sends one request and receives its reply under one lock, so that replies are paired
    /// with requests whichever thread asks. The arguments and the descriptors that come back
    /// are checked against the method's entry in the table.
    pub(crate) fn call(&self, spec: &Method, args: Vec<Value>) -> Result<Answer> {
        spec.check_args(&args)?;
        if spec.data == DataKind::NoReply {
            return Err(Error::InvalidArgument(format!(
                "{} has no reply: use finalize()",
                spec.name
            )));
        }
        let method = spec.name;
        let request = serde_json::to_vec(&json!({ "method": method, "args": args }))
            .map_err(|e| Error::Protocol(format!("encoding {method}: {e}")))?;
        let mut slot = lock(&self.slot);
        let channel = match slot.channel.as_mut() {
            Some(channel) => channel,
            None => return Err(Error::Closed(slot.closed_because.clone())),
        };
        if let Err(e) = channel.send(&request) {
            let error = Error::io(format!("sending {method} to the proxy"), e);
            slot.close(&error);
            return Err(error);
        }
        let parsed = match channel.recv() {
            Ok(packet) => (serde_json::from_slice::<Reply>(packet.bytes), packet.fds),
            Err(e) => {
                let error = Error::io(format!("receiving the reply to {method}"), e);
                slot.close(&error);
                return Err(error);
            }
        };
        drop(slot);
        let (reply, fds) = match parsed {
            (Ok(reply), fds) => (reply, fds),
            (Err(e), _) => {
                return Err(Error::Protocol(format!("malformed reply to {method}: {e}")))
            }
        };
        if !reply.success {
            return Err(Error::Proxy {
                method: method.to_string(),
                code: ErrorCode::from_wire(&reply.error_code),
                message: reply.error,
            });
        }
        let (fd_count, has_pipeid) = spec.data.expected_fds();
        if fds.len() != fd_count || (reply.pipeid != 0) != has_pipeid {
            return Err(Error::Protocol(format!(
                "{method} replied with pipeid {} and {} file descriptors",
                reply.pipeid,
                fds.len()
            )));
        }
        Ok(Answer {
            value: reply.value,
            pipeid: reply.pipeid,
            fds,
        })
    }

    /// A proxy that refused its flags dies before answering Initialize; its exit status
    /// (its stderr has the reason) says more than the broken socket does.
    pub(crate) fn explain_failed_start(&self, err: Error) -> Error {
        if !matches!(err, Error::Io { .. } | Error::Closed(_)) {
            return err;
        }
        let mut child = lock(&self.child);
        if let Some(process) = child.as_mut() {
            for _ in 0..50 {
                match process.try_wait() {
                    Ok(Some(status)) if !status.success() => return Error::ProxyExited(status),
                    Ok(None) => thread::sleep(Duration::from_millis(20)),
                    _ => break,
                }
            }
        }
        err
    }

    pub(crate) fn finish_pipe(&self, pipeid: u64) -> Result<()> {
        self.call(&methods::FINISH_PIPE, vec![json!(pipeid)])
            .map(|_| ())
    }

    /// Calls a single-pipe method and reads the whole pipe while FinishPipe runs.
    pub(crate) fn call_read_pipe(
        &self,
        spec: &Method,
        args: Vec<Value>,
    ) -> Result<(Value, Vec<u8>)> {
        if spec.data != DataKind::Pipe {
            return Err(Error::InvalidArgument(format!(
                "{} hands out no single pipe",
                spec.name
            )));
        }
        let method = spec.name;
        let mut answer = self.call(spec, args)?;
        let mut pipe = File::from(answer.fds.remove(0));
        let pipeid = answer.pipeid;
        thread::scope(|scope| {
            let reader = scope.spawn(move || {
                let mut data = Vec::new();
                pipe.read_to_end(&mut data).map(|_| data)
            });
            let finished = self.finish_pipe(pipeid);
            let read = reader.join().unwrap_or_else(|_| {
                Err(io::Error::new(io::ErrorKind::Other, "pipe reader panicked"))
            });
            finished?;
            let data = read.map_err(|e| Error::io(format!("reading the {method} pipe"), e))?;
            Ok((answer.value, data))
        })
    }
}

impl ChannelSlot {
    /// After a failed send or receive the request/reply pairing is lost: stop using the socket.
    fn close(&mut self, why: &Error) {
        self.channel = None;
        self.closed_because = why.to_string();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the socket makes the proxy exit; reap it without making the caller wait.
        lock(&self.slot).channel = None;
        if let Some(mut child) = lock(&self.child).take() {
            if let Ok(None) = child.try_wait() {
                let _ = thread::Builder::new()
                    .name("layerpipe-reaper".into())
                    .spawn(move || child.wait());
            }
        }
    }
}
