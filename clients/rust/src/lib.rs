//! A blocking client for the skopeo image-proxy wire (protocol `^0.2.3`), served by
//! `layerpipe experimental-image-proxy` or `skopeo experimental-image-proxy`, and for
//! layerpipe's protocol 1.0 (JSON-RPC 2.0, module [`v1`]).
//!
//! ```no_run
//! use std::io::Read;
//! use layerpipe::{ImageProxy, ImageProxyConfig};
//!
//! let proxy = ImageProxy::new_with_config(ImageProxyConfig {
//!     program: "skopeo".into(),
//!     ..Default::default()
//! })?;
//! let image = proxy.open_image("oci:/srv/layout:latest")?;
//! let (_digest, manifest) = proxy.fetch_manifest_parsed(&image)?;
//! for layer in &manifest.layers {
//!     let (mut reader, finish) = proxy.get_blob(&image, &layer.digest, layer.size)?;
//!     let mut data = Vec::new();
//!     reader.read_to_end(&mut data)?;
//!     finish.finish()?; // size and digest verdict
//! }
//! proxy.close_image(&image)?;
//! proxy.finalize()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod blob;
mod raw_blob;
mod channel;
mod config;
mod error;
pub mod methods;
mod proxy;
mod session;
mod types;
pub mod v1;
mod version;

pub use blob::{BlobReader, FinishHandle};
pub use raw_blob::RawBlobErrorReader;
pub use config::ImageProxyConfig;
pub use error::{Error, ErrorCode, Result, RpcErrorCode, RPC_ERROR_CODES};
pub use methods::{ArgKind, DataKind, Method, METHODS};
pub use proxy::{ImageProxy, OpenedImage};
pub use types::{Descriptor, ImageManifest, LayerInfo};
pub use version::{ProtocolVersion, MIN_VERSION, NEXT_INCOMPATIBLE};

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn handles_can_move_between_threads() {
        assert_send_sync::<crate::ImageProxy>();
        assert_send_sync::<crate::OpenedImage>();
        assert_send::<crate::BlobReader>();
        assert_send::<crate::FinishHandle>();
        assert_send::<crate::RawBlobErrorReader>();
        assert_send_sync::<crate::Error>();
        assert_send_sync::<crate::v1::ImageProxy>();
        assert_send_sync::<crate::v1::OpenedImage>();
        assert_send::<crate::v1::Transfer>();
    }
}
