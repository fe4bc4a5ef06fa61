//! The 1.0 requests that start transfers: GetBlob and GetRawBlob.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::client::{named, ImageProxy};
use super::connection::Reply;
use super::methods::{self as m, Method1};
use super::slot::{Progress, ProgressCallback, TransferSlot};
use super::transfer::{Source, Transfer};
use super::types::{OpenedImage, Payload};
use crate::error::{Error, Result};

impl ImageProxy {
    fn start_transfer(
        &self,
        method: &'static Method1,
        params: Value,
        callback: Option<ProgressCallback>,
    ) -> Result<Transfer> {
        let slot = Arc::new(TransferSlot::with_callback(callback));
        let pending = self
            .connection
            .start_call(method, named(params), Some(Arc::clone(&slot)))?;
        let reply = self.connection.wait(pending)?;
        let Reply { value, fds } = reply;
        let id = value.get("transfer").and_then(Value::as_u64);
        let size = value.get("size").and_then(Value::as_i64);
        let (id, size) = match (id, size) {
            (Some(id), Some(size)) if size >= -1 => (id, u64::try_from(size).ok()),
            _ => return Err(Error::Protocol(format!("{} answered {value}", method.name))),
        };
        let source = match self.server.payload {
            Payload::Fd => {
                let mut fds = fds.into_iter();
                match (fds.next(), fds.next()) {
                    (Some(fd), None) => Some(Source::Pipe(File::from(fd))),
                    _ => None,
                }
            }
            Payload::Fifo if fds.is_empty() => value
                .get("path")
                .and_then(Value::as_str)
                .map(|p| Source::Fifo(PathBuf::from(p))),
            Payload::Stream if fds.is_empty() => Some(Source::Stream {
                window: self.server.window,
            }),
            _ => None,
        };
        match source {
            Some(source) => Transfer::new(Arc::clone(&self.connection), id, size, source, slot),
            None => {
                // Free the server's side; the reply broke the payload contract.
                let _ = self.connection.start_call(
                    &m::CANCEL_TRANSFER,
                    named(json!({ "transfer": id })),
                    None,
                );
                self.connection.forget_transfer(id);
                Err(Error::Protocol(format!(
                    "{} answered {value} without the {} payload it promised",
                    method.name,
                    self.server.payload.as_str()
                )))
            }
        }
    }

    /// Starts fetching a blob, verified for size and digest. `size`: the expected size,
    /// `None` for the manifest's. Read the [`Transfer`], then [`Transfer::finish`] gives the verdict.
    pub fn get_blob(
        &self,
        image: &OpenedImage,
        digest: &str,
        size: Option<u64>,
    ) -> Result<Transfer> {
        self.start_transfer(&m::GET_BLOB, blob_params(image, digest, size, false), None)
    }

    /// `get_blob` with `transfer/progress` reports (at most ten a second) passed to `callback`,
    /// which runs on the connection's reader thread.
    pub fn get_blob_with_progress(
        &self,
        image: &OpenedImage,
        digest: &str,
        size: Option<u64>,
        callback: impl FnMut(Progress) + Send + 'static,
    ) -> Result<Transfer> {
        self.start_transfer(
            &m::GET_BLOB,
            blob_params(image, digest, size, true),
            Some(Box::new(callback)),
        )
    }

    /// Fetches a blob into `out` and checks it; returns the byte count.
    pub fn copy_blob<W: Write + ?Sized>(
        &self,
        image: &OpenedImage,
        digest: &str,
        size: Option<u64>,
        out: &mut W,
    ) -> Result<u64> {
        let mut transfer = self.get_blob(image, digest, size)?;
        let copied = io::copy(&mut transfer, out);
        // The server's verdict explains a short read better than the read error does.
        transfer.finish()?;
        copied.map_err(|e| Error::io(format!("copying blob {digest}"), e))
    }

    /// A blob without verification.
    pub fn get_raw_blob(&self, image: &OpenedImage, digest: &str) -> Result<Transfer> {
        self.start_transfer(
            &m::GET_RAW_BLOB,
            json!({ "image": image.0, "digest": digest }),
            None,
        )
    }

    /// `length` bytes of a blob from `offset` (`None`: to its end), without verification: how
    /// to resume a blob partly fetched.
    pub fn get_raw_blob_range(
        &self,
        image: &OpenedImage,
        digest: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Transfer> {
        let mut params = json!({ "image": image.0, "digest": digest, "offset": offset });
        if let Some(length) = length {
            params["length"] = json!(length);
        }
        self.start_transfer(&m::GET_RAW_BLOB, params, None)
    }

    /// Stops a transfer (CancelTransfer); the same as [`Transfer::cancel`].
    pub fn cancel_transfer(&self, transfer: Transfer) -> Result<()> {
        transfer.cancel()
    }
}

fn blob_params(image: &OpenedImage, digest: &str, size: Option<u64>, progress: bool) -> Value {
    let mut params = json!({ "image": image.0, "digest": digest });
    if let Some(size) = size {
        params["size"] = json!(size);
    }
    if progress {
        params["progress"] = json!(true);
    }
    params
}
