//! The error side of GetRawBlob: a pipe the server closes once its copy into the data pipe has
//! ended, carrying a JSON error when that copy failed.

use std::fs::File;
use std::io::Read;

use serde::Deserialize;

use crate::error::{Error, ErrorCode, Result};

/// The error side of GetRawBlob.
pub struct RawBlobErrorReader {
    file: File,
}

#[derive(Deserialize)]
struct RawBlobFailure {
    code: String,
    message: String,
}

impl RawBlobErrorReader {
    pub(crate) fn new(file: File) -> RawBlobErrorReader {
        RawBlobErrorReader { file }
    }

    /// Waits for the server to close the error pipe, which it does when the copy into the data
    /// pipe has ended: read the data to its end (or drop it) first. Returns the copy's result.
    /// GetRawBlob does not verify anything: check the digest of what you read.
    pub fn finish(mut self) -> Result<()> {
        let mut text = Vec::new();
        self.file
            .read_to_end(&mut text)
            .map_err(|e| Error::io("reading the GetRawBlob error pipe", e))?;
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let failure: RawBlobFailure = serde_json::from_slice(&text).map_err(|e| {
            Error::Protocol(format!(
                "GetRawBlob error pipe carried {:?}: {e}",
                String::from_utf8_lossy(&text)
            ))
        })?;
        Err(Error::Proxy {
            method: "GetRawBlob".into(),
            code: ErrorCode::from_wire(&failure.code),
            message: failure.message,
        })
    }
}

impl std::fmt::Debug for RawBlobErrorReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBlobErrorReader")
            .field("file", &self.file)
            .finish()
    }
}
