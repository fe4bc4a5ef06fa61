//! The public API: starting the proxy and one method per wire call.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::blob::{blob_pipe, BlobReader, FinishHandle};
use crate::raw_blob::RawBlobErrorReader;
use crate::channel::{seqpacket_pair, Channel};
use crate::config::ImageProxyConfig;
use crate::error::{Error, Result};
use crate::methods::{self, Method, SENTINEL_IMAGE_ID};
use crate::session::{Answer, Inner};
use crate::types::{ImageManifest, LayerInfo};
use crate::version::{self, ProtocolVersion};

/// An image opened by [`ImageProxy::open_image`]; close it with [`ImageProxy::close_image`].
#[derive(Debug, PartialEq, Eq)]
pub struct OpenedImage(u64);

impl OpenedImage {
    /// The proxy's id for the image.
    pub fn id(&self) -> u64 {
        self.0
    }
}

/// A running proxy process. All methods take `&self` and may be called from several threads;
/// each request/reply exchange holds an internal lock, and blob data flows outside it.
pub struct ImageProxy {
    inner: Arc<Inner>,
    version: ProtocolVersion,
}

impl std::fmt::Debug for ImageProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageProxy")
            .field("version", &self.version)
            .finish()
    }
}

impl ImageProxy {
    /// Starts `layerpipe experimental-image-proxy` with default options.
    pub fn new() -> Result<ImageProxy> {
        ImageProxy::new_with_config(ImageProxyConfig::default())
    }

    /// Starts the proxy, sends Initialize and checks that it speaks `^0.2.3`.
    pub fn new_with_config(config: ImageProxyConfig) -> Result<ImageProxy> {
        let (ours, theirs) =
            seqpacket_pair().map_err(|e| Error::io("creating the socket pair", e))?;
        let child = config
            .spawn(theirs)
            .map_err(|e| Error::io(format!("starting {}", config.program.display()), e))?;
        let inner = Arc::new(Inner::new(
            Channel::new(ours),
            child,
            config.stall_timeout(),
        ));
        // On failure `inner` drops here, which closes the socket and reaps the child.
        let answer = match inner.call(&methods::INITIALIZE, Vec::new()) {
            Ok(answer) => answer,
            Err(err) => return Err(inner.explain_failed_start(err)),
        };
        let text = answer.value.as_str().ok_or_else(|| {
            Error::Protocol(format!(
                "Initialize answered {} instead of a version",
                answer.value
            ))
        })?;
        let version = version::check_supported(text)?;
        Ok(ImageProxy { inner, version })
    }

    /// The protocol version the proxy answered.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// Whether the proxy's protocol version has `method`.
    pub fn supports(&self, method: &Method) -> bool {
        self.version >= method.since
    }

    fn require(&self, method: &'static Method) -> Result<()> {
        if self.supports(method) {
            Ok(())
        } else {
            Err(Error::MethodUnsupported {
                method: method.name,
                since: method.since,
                version: self.version,
            })
        }
    }

    /// One exchange, refused here when the proxy's version lacks the method.
    fn call(&self, method: &'static Method, args: Vec<Value>) -> Result<Answer> {
        self.require(method)?;
        self.inner.call(method, args)
    }

    fn call_read_pipe(
        &self,
        method: &'static Method,
        args: Vec<Value>,
    ) -> Result<(Value, Vec<u8>)> {
        self.require(method)?;
        self.inner.call_read_pipe(method, args)
    }

    /// Opens `TRANSPORT:REFERENCE` (e.g. `docker://quay.io/x/y:tag`, `oci:/dir:ref`).
    pub fn open_image(&self, image_ref: &str) -> Result<OpenedImage> {
        let answer = self.call(&methods::OPEN_IMAGE, vec![json!(image_ref)])?;
        match answer.value.as_u64() {
            Some(id) if id != SENTINEL_IMAGE_ID => Ok(OpenedImage(id)),
            _ => Err(Error::Protocol(format!(
                "OpenImage answered {} instead of an image id",
                answer.value
            ))),
        }
    }

    /// Like `open_image`, but `None` when the image does not exist (protocol 0.2.4).
    pub fn open_image_optional(&self, image_ref: &str) -> Result<Option<OpenedImage>> {
        let answer = self.call(&methods::OPEN_IMAGE_OPTIONAL, vec![json!(image_ref)])?;
        match answer.value.as_u64() {
            Some(SENTINEL_IMAGE_ID) => Ok(None),
            Some(id) => Ok(Some(OpenedImage(id))),
            None => Err(Error::Protocol(format!(
                "OpenImageOptional answered {} instead of an image id",
                answer.value
            ))),
        }
    }

    pub fn close_image(&self, image: &OpenedImage) -> Result<()> {
        self.call(&methods::CLOSE_IMAGE, vec![json!(image.0)])
            .map(|_| ())
    }

    /// The image's manifest in OCI form and the digest of the manifest as stored (before any
    /// Docker-to-OCI conversion).
    pub fn fetch_manifest(&self, image: &OpenedImage) -> Result<(String, Vec<u8>)> {
        let (value, bytes) = self.call_read_pipe(&methods::GET_MANIFEST, vec![json!(image.0)])?;
        match value {
            Value::String(digest) => Ok((digest, bytes)),
            other => Err(Error::Protocol(format!(
                "GetManifest answered {other} instead of a digest"
            ))),
        }
    }

    /// `fetch_manifest`, parsed.
    pub fn fetch_manifest_parsed(&self, image: &OpenedImage) -> Result<(String, ImageManifest)> {
        let (digest, bytes) = self.fetch_manifest(image)?;
        let manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Protocol(format!("GetManifest sent an invalid manifest: {e}")))?;
        Ok((digest, manifest))
    }

    /// The full OCI image configuration, as bytes (GetFullConfig).
    pub fn fetch_config_raw(&self, image: &OpenedImage) -> Result<Vec<u8>> {
        Ok(self
            .call_read_pipe(&methods::GET_FULL_CONFIG, vec![json!(image.0)])?
            .1)
    }

    /// The full OCI image configuration (GetFullConfig).
    pub fn fetch_config(&self, image: &OpenedImage) -> Result<Value> {
        parse_json("GetFullConfig", &self.fetch_config_raw(image)?)
    }

    /// Only the `config` member of the image configuration: Env, Cmd, Labels... (GetConfig,
    /// kept for old clients).
    pub fn fetch_config_member(&self, image: &OpenedImage) -> Result<Value> {
        let (_, bytes) = self.call_read_pipe(&methods::GET_CONFIG, vec![json!(image.0)])?;
        parse_json("GetConfig", &bytes)
    }

    /// Starts fetching a blob. Read the [`BlobReader`] to its end, then call
    /// [`FinishHandle::finish`]: the verdict on size and digest comes from there.
    /// Several blobs may be read at once, from one thread or many.
    pub fn get_blob(
        &self,
        image: &OpenedImage,
        digest: &str,
        size: u64,
    ) -> Result<(BlobReader, FinishHandle)> {
        let mut answer = self.call(
            &methods::GET_BLOB,
            vec![json!(image.0), json!(digest), json!(size)],
        )?;
        let reported = reported_size("GetBlob", &answer.value)?;
        let pipe = File::from(answer.fds.remove(0));
        Ok(blob_pipe(
            Arc::clone(&self.inner),
            answer.pipeid,
            pipe,
            size,
            reported,
            self.inner.stall_timeout,
        ))
    }

    /// Fetches a blob into `out` and checks it; returns the byte count.
    pub fn copy_blob<W: Write + ?Sized>(
        &self,
        image: &OpenedImage,
        digest: &str,
        size: u64,
        out: &mut W,
    ) -> Result<u64> {
        let (mut reader, finish) = self.get_blob(image, digest, size)?;
        let copied = io::copy(&mut reader, out);
        drop(reader);
        // The server's verdict explains a short read better than the read error does.
        finish.finish()?;
        copied.map_err(|e| Error::io(format!("copying blob {digest}"), e))
    }

    /// Fetches a blob without verification (protocol 0.2.8): its size if known, the data
    /// pipe (end of file when the copy ends) and the error side, to be read after the data.
    pub fn get_raw_blob(
        &self,
        image: &OpenedImage,
        digest: &str,
    ) -> Result<(Option<u64>, File, RawBlobErrorReader)> {
        let answer = self.call(&methods::GET_RAW_BLOB, vec![json!(image.0), json!(digest)])?;
        let size = reported_size("GetRawBlob", &answer.value)?;
        let mut fds = answer.fds.into_iter();
        let (data, error) = match (fds.next(), fds.next()) {
            (Some(data), Some(error)) => (data, error),
            _ => unreachable!("call() checked that two fds came"),
        };
        Ok((
            size,
            File::from(data),
            RawBlobErrorReader::new(File::from(error)),
        ))
    }

    /// The layers as the image reports them for copying, or `None` when the proxy is older
    /// than 0.2.5. Uses GetLayerInfoPiped from 0.2.7 (no 32 KiB limit).
    pub fn get_layer_info(&self, image: &OpenedImage) -> Result<Option<Vec<LayerInfo>>> {
        let value = if self.supports(&methods::GET_LAYER_INFO_PIPED) {
            let (_, bytes) =
                self.call_read_pipe(&methods::GET_LAYER_INFO_PIPED, vec![json!(image.0)])?;
            parse_json("GetLayerInfoPiped", &bytes)?
        } else if self.supports(&methods::GET_LAYER_INFO) {
            self.call(&methods::GET_LAYER_INFO, vec![json!(image.0)])?
                .value
        } else {
            return Ok(None);
        };
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| Error::Protocol(format!("invalid layer list: {e}")))
    }

    /// Sends Shutdown, closes the socket and waits for the proxy to exit with status 0.
    /// Blob handles still alive afterwards fail with [`Error::Closed`].
    pub fn finalize(self) -> Result<()> {
        self.inner.shutdown()
    }
}

fn parse_json(method: &str, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Protocol(format!("{method} sent invalid JSON: {e}")))
}

/// A blob size in a reply: a non-negative integer, or -1 for unknown.
fn reported_size(method: &str, value: &Value) -> Result<Option<u64>> {
    if let Some(size) = value.as_u64() {
        return Ok(Some(size));
    }
    if value.as_i64() == Some(-1) {
        return Ok(None);
    }
    Err(Error::Protocol(format!(
        "{method} answered {value} instead of a size"
    )))
}
