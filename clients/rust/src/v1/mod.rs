//! Protocol 1.0 (JSON-RPC 2.0, one message per SEQPACKET packet), on a spawned
//! `layerpipe experimental-image-proxy` or on the `layerpipe serve --listen unix:PATH` service.
//!
//! ```no_run
//! use std::io::Read;
//! use layerpipe::v1::ImageProxy;
//! use layerpipe::ImageProxyConfig;
//!
//! let proxy = ImageProxy::new_with_config(ImageProxyConfig::default())?;
//! // or: ImageProxy::connect("unix:/run/user/1000/layerpipe/layerpipe.sock")?
//! let image = proxy.open_image("oci:/srv/layout:latest")?;
//! for layer in proxy.get_layer_info(&image)? {
//!     let mut transfer = proxy.get_blob(&image, &layer.digest, layer.known_size())?;
//!     let mut data = Vec::new();
//!     transfer.read_to_end(&mut data)?;
//!     transfer.finish()?; // size and digest verdict
//! }
//! proxy.close_image(&image)?;
//! proxy.finalize()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod address;
mod base64;
mod blobs;
mod client;
mod connection;
pub mod methods;
mod slot;
mod transfer;
mod types;
mod wire;

#[cfg(test)]
mod peer_tests;

pub use client::ImageProxy;
pub use slot::{Progress, ProgressCallback};
pub use transfer::Transfer;
pub use types::{
    FullConfig, Instance, Manifest, OpenedImage, Options, Payload, Platform, ServerInfo,
};
