//! A 1.0 transfer as the client reads it: a pipe read end (`fd`), a FIFO (`fifo`) or in-band
//! chunks (`stream`), and FinishTransfer's verdict.
//!
//! A pipe or FIFO of known size is read to exactly that size, so reading never waits for the
//! server to close its end. Of unknown size, FinishTransfer is sent at once: the server closes
//! the pipe when the copy ends and answers it then. `finish()` first closes what is left
//! unread, so it cannot wait on a full pipe: the server's copy then fails with a broken pipe.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::connection::{Connection, PendingCall};
use super::methods::{CANCEL_TRANSFER, FINISH_TRANSFER, TRANSFER_CREDIT};
use super::slot::{Progress, TransferSlot};
use crate::error::{Error, ErrorCode, Result, RpcErrorCode};

pub(crate) enum Source {
    Pipe(File),
    /// Opened at the first read.
    Fifo(PathBuf),
    Stream {
        window: u64,
    },
}

enum Data {
    File(Option<File>),
    Fifo(PathBuf, Option<File>),
    Stream { window: u64, ungranted: u64 },
}

/// The bytes of one GetBlob or GetRawBlob. Read it, then call [`Transfer::finish`] for the
/// server's verdict (size and digest for GetBlob). Dropping it unfinished cancels it.
pub struct Transfer {
    connection: Arc<Connection>,
    id: u64,
    size: Option<u64>,
    received: u64,
    data: Data,
    slot: Arc<TransferSlot>,
    /// FinishTransfer already sent (transfers of unknown size on a pipe or FIFO).
    finishing: Option<PendingCall>,
    done: bool,
}

impl Transfer {
    pub(crate) fn new(
        connection: Arc<Connection>,
        id: u64,
        size: Option<u64>,
        source: Source,
        slot: Arc<TransferSlot>,
    ) -> Result<Transfer> {
        let data = match source {
            Source::Pipe(file) => Data::File(Some(file)),
            Source::Fifo(path) => Data::Fifo(path, None),
            Source::Stream { window } => Data::Stream {
                window,
                ungranted: 0,
            },
        };
        let mut transfer = Transfer {
            connection,
            id,
            size,
            received: 0,
            data,
            slot,
            finishing: None,
            done: false,
        };
        if size.is_none() && !matches!(transfer.data, Data::Stream { .. }) {
            transfer.finishing = Some(transfer.start(&FINISH_TRANSFER)?);
        }
        Ok(transfer)
    }

    fn start(&self, method: &'static super::methods::Method1) -> Result<PendingCall> {
        self.connection
            .start_call(method, transfer_params(self.id), None)
    }

    /// The server's id for the transfer.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Bytes the server will send, if it knows.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Bytes read so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The latest `transfer/progress` (GetBlob with progress).
    pub fn progress(&self) -> Option<Progress> {
        self.slot.latest_progress()
    }

    /// Closes what is left unread and returns FinishTransfer's answer: `Ok` only when the
    /// server sent every byte (and, for GetBlob, size and digest matched). Finishing before the
    /// end was read fails with [`RpcErrorCode::BrokenPipe`].
    pub fn finish(mut self) -> Result<()> {
        self.done = true;
        let all_read = self.size == Some(self.received);
        let unread_in_band = match &self.data {
            // The server cannot notice that nobody will read: stop it.
            Data::Fifo(_, None) => !all_read,
            Data::Stream { .. } => !all_read && self.slot.ending().is_none(),
            _ => false,
        };
        self.close_local();
        let result = if unread_in_band {
            let cancelled = match self.finishing.take() {
                Some(finishing) => {
                    drop(finishing);
                    Ok(())
                }
                None => self
                    .start(&CANCEL_TRANSFER)
                    .and_then(PendingCall::wait)
                    .map(|_| ()),
            };
            cancelled.and(Err(Error::Rpc {
                method: FINISH_TRANSFER.name.into(),
                code: RpcErrorCode::BrokenPipe,
                message: format!(
                    "transfer {} was finished before its data was read, so it was cancelled: broken pipe",
                    self.id
                ),
                error_code: ErrorCode::Epipe,
                kind: None,
            }))
        } else {
            let finishing = match self.finishing.take() {
                Some(finishing) => finishing,
                None => self.start(&FINISH_TRANSFER)?,
            };
            finishing.wait().map(|_| ())
        };
        self.connection.forget_transfer(self.id);
        result
    }

    /// Stops the transfer (CancelTransfer): the server releases its source and closes its end.
    pub fn cancel(mut self) -> Result<()> {
        self.done = true;
        self.close_local();
        let result = match self.finishing.take() {
            // Already forgotten by FinishTransfer: closing our end stopped it.
            Some(finishing) => finishing
                .wait()
                .map(|_| ())
                .or_else(|err| match err.rpc_code() {
                    Some(_) => Ok(()),
                    None => Err(err),
                }),
            None => self.start(&CANCEL_TRANSFER)?.wait().map(|_| ()),
        };
        self.connection.forget_transfer(self.id);
        result
    }

    fn close_local(&mut self) {
        if let Data::File(file) | Data::Fifo(_, file) = &mut self.data {
            *file = None;
        }
    }

    fn read_file(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wanted = match self.size {
            Some(size) => {
                let remaining = size - self.received.min(size);
                if remaining == 0 {
                    // Exactly the announced size: done, whether or not the server closed yet.
                    self.close_local();
                    return Ok(0);
                }
                remaining.min(buf.len() as u64) as usize
            }
            None => buf.len(),
        };
        let file = match &mut self.data {
            Data::File(Some(file)) => file,
            Data::Fifo(path, file) => {
                if file.is_none() {
                    *file = Some(
                        OpenOptions::new()
                            .read(true)
                            .custom_flags(libc::O_CLOEXEC)
                            .open(&*path)?,
                    );
                }
                file.as_mut().expect("opened above")
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    format!("transfer {} was closed", self.id),
                ))
            }
        };
        let n = loop {
            match file.read(&mut buf[..wanted]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 && wanted > 0 && self.size.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the server ended transfer {} after {} of {} bytes (finish() tells why)",
                    self.id,
                    self.received,
                    self.size.unwrap_or(0)
                ),
            ));
        }
        Ok(n)
    }

    fn read_stream(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.slot.read(buf)?;
        if let Data::Stream { window, ungranted } = &mut self.data {
            *ungranted += n as u64;
            // Grant in batches: one notification per quarter window read, not per chunk.
            if *ungranted >= (*window / 4).max(1) && self.slot.ending().is_none() {
                let mut params = Map::new();
                params.insert("transfer".into(), json!(self.id));
                params.insert("bytes".into(), json!(*ungranted));
                *ungranted = 0;
                self.connection
                    .notify(TRANSFER_CREDIT, params)
                    .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e.to_string()))?;
            }
        }
        Ok(n)
    }
}

fn transfer_params(id: u64) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert("transfer".into(), json!(id));
    params
}

impl Read for Transfer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = match self.data {
            Data::Stream { .. } => self.read_stream(buf)?,
            _ => self.read_file(buf)?,
        };
        self.received += n as u64;
        Ok(n)
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.close_local();
        // The answer is not wanted; an in-flight FinishTransfer already frees the server's side.
        if self.finishing.take().is_none() {
            let _ = self.start(&CANCEL_TRANSFER);
        }
        self.connection.forget_transfer(self.id);
    }
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer")
            .field("id", &self.id)
            .field("size", &self.size)
            .field("received", &self.received)
            .finish()
    }
}
