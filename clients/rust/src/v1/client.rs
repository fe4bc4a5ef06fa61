//! The 1.0 API: connecting (a spawned proxy or the unix service) and one method per request.

use std::os::unix::io::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::address::service_path;
use super::base64;
use super::connection::Connection;
use super::methods::{self as m, Method1, DEFAULT_STREAM_WINDOW, REQUESTED_PROTOCOL_VERSION};
use super::types::{
    FullConfig, Instance, Manifest, OpenedImage, Options, Payload, Platform, ServerInfo,
};
use crate::channel::{connect_seqpacket, seqpacket_pair};
use crate::config::ImageProxyConfig;
use crate::error::{Error, Result};
use crate::types::LayerInfo;

/// A protocol 1.0 connection. Every method takes `&self` and may be called from any number of
/// threads at once: requests are answered in any order, and a slow one blocks no other.
pub struct ImageProxy {
    pub(super) connection: Arc<Connection>,
    pub(super) server: ServerInfo,
    spawned: bool,
}

impl std::fmt::Debug for ImageProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageProxy")
            .field("server", &self.server)
            .finish()
    }
}

#[derive(Deserialize)]
struct InitializeResult {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
    server: ServerName,
    #[serde(default)]
    methods: Vec<String>,
    payload: String,
    #[serde(default)]
    window: Option<u64>,
}

#[derive(Deserialize)]
struct ServerName {
    name: String,
    version: String,
}

/// A params object from `json!({...})`.
pub(super) fn named(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn decode_base64(method: &str, field: &str, value: &Value) -> Result<Vec<u8>> {
    value
        .get(field)
        .and_then(Value::as_str)
        .and_then(base64::decode)
        .ok_or_else(|| Error::Protocol(format!("{method} answered no base64 {field}: {value}")))
}

fn parse<T: DeserializeOwned>(method: &str, value: Value) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::Protocol(format!("malformed {method} result: {e}")))
}

impl ImageProxy {
    /// Starts `layerpipe experimental-image-proxy` (or `config.program`) on a socket pair and
    /// speaks 1.0 with it, with fd payloads.
    pub fn new_with_config(config: ImageProxyConfig) -> Result<ImageProxy> {
        ImageProxy::spawn(config, Options::default())
    }

    /// Like `new_with_config`, with connection options.
    pub fn spawn(config: ImageProxyConfig, options: Options) -> Result<ImageProxy> {
        let (ours, theirs) =
            seqpacket_pair().map_err(|e| Error::io("creating the socket pair", e))?;
        let child = config
            .spawn(theirs)
            .map_err(|e| Error::io(format!("starting {}", config.program.display()), e))?;
        let connection = Arc::new(Connection::start(ours, Some(child), options.timeout)?);
        match ImageProxy::initialize(&connection, &options) {
            Ok(server) => Ok(ImageProxy {
                connection,
                server,
                spawned: true,
            }),
            Err(err) => Err(connection.explain_failed_start(err)),
        }
    }

    /// Connects to a running service: `unix:PATH` (`layerpipe serve --listen unix:PATH`), or
    /// `unix:` alone for the service's default socket, `$XDG_RUNTIME_DIR/layerpipe/layerpipe.sock`.
    pub fn connect(address: &str) -> Result<ImageProxy> {
        ImageProxy::connect_with(address, Options::default())
    }

    /// Like `connect`, with connection options.
    pub fn connect_with(address: &str, options: Options) -> Result<ImageProxy> {
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
        let path = service_path(address, runtime_dir.as_deref())?;
        ImageProxy::connect_unix(path, options)
    }

    /// Connects to the SOCK_SEQPACKET unix socket at `path`.
    pub fn connect_unix(path: impl AsRef<Path>, options: Options) -> Result<ImageProxy> {
        let path = path.as_ref();
        let socket = connect_seqpacket(path)
            .map_err(|e| Error::io(format!("connecting to {}", path.display()), e))?;
        ImageProxy::over_socket(socket, options)
    }

    /// Speaks 1.0 over an already connected SOCK_SEQPACKET socket.
    pub fn over_socket(socket: OwnedFd, options: Options) -> Result<ImageProxy> {
        let connection = Arc::new(Connection::start(socket, None, options.timeout)?);
        let server = ImageProxy::initialize(&connection, &options)?;
        Ok(ImageProxy {
            connection,
            server,
            spawned: false,
        })
    }

    fn initialize(connection: &Connection, options: &Options) -> Result<ServerInfo> {
        let mut request = Map::new();
        request.insert("protocolVersion".into(), json!(REQUESTED_PROTOCOL_VERSION));
        let payloads: Vec<&str> = options.payloads.iter().map(|p| p.as_str()).collect();
        request.insert("payloads".into(), json!(payloads));
        if let Some(window) = options.window {
            request.insert("window".into(), json!(window));
        }
        let result: InitializeResult = parse(
            "Initialize",
            connection.call(&m::INITIALIZE, request)?.value,
        )?;
        if !result.protocol_version.starts_with("1.") {
            return Err(Error::Protocol(format!(
                "Initialize answered protocol {}, this client speaks 1.x",
                result.protocol_version
            )));
        }
        let payload = Payload::from_wire(&result.payload)
            .filter(|p| options.payloads.contains(p))
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "Initialize chose payload {:?}, not one we offered",
                    result.payload
                ))
            })?;
        Ok(ServerInfo {
            protocol_version: result.protocol_version,
            name: result.server.name,
            version: result.server.version,
            methods: result.methods,
            payload,
            window: result.window.unwrap_or(DEFAULT_STREAM_WINDOW),
        })
    }

    /// What Initialize answered.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// Whether the server implements `method` (by its 1.0 name).
    pub fn supports(&self, method: &str) -> bool {
        self.server.methods.iter().any(|name| name == method)
    }

    fn call(&self, method: &'static Method1, params: Value) -> Result<Value> {
        self.connection
            .call(method, named(params))
            .map(|reply| reply.value)
    }

    fn call_image<T: DeserializeOwned>(
        &self,
        method: &'static Method1,
        image: &OpenedImage,
    ) -> Result<T> {
        parse(method.name, self.call(method, json!({ "image": image.0 }))?)
    }

    /// Opens `TRANSPORT:REFERENCE` (e.g. `docker://quay.io/x/y:tag`, `oci:/dir:ref`).
    pub fn open_image(&self, reference: &str) -> Result<OpenedImage> {
        let value = self.call(&m::OPEN_IMAGE, json!({ "reference": reference }))?;
        match value.get("image").and_then(Value::as_u64) {
            Some(id) => Ok(OpenedImage(id)),
            None => Err(Error::Protocol(format!("OpenImage answered {value}"))),
        }
    }

    /// Like `open_image`, but `None` when the image does not exist.
    pub fn open_image_optional(&self, reference: &str) -> Result<Option<OpenedImage>> {
        let value = self.call(&m::OPEN_IMAGE_OPTIONAL, json!({ "reference": reference }))?;
        match value.get("image") {
            Some(Value::Null) => Ok(None),
            Some(id) if id.is_u64() => Ok(id.as_u64().map(OpenedImage)),
            _ => Err(Error::Protocol(format!(
                "OpenImageOptional answered {value}"
            ))),
        }
    }

    pub fn close_image(&self, image: &OpenedImage) -> Result<()> {
        self.call(&m::CLOSE_IMAGE, json!({ "image": image.0 }))
            .map(|_| ())
    }

    fn manifest(&self, params: Value) -> Result<Manifest> {
        let value = self.call(&m::GET_MANIFEST, params)?;
        let data = decode_base64("GetManifest", "data", &value)?;
        let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_string);
        match (text("digest"), text("mediaType")) {
            (Some(digest), Some(media_type)) => Ok(Manifest {
                digest,
                media_type,
                data,
            }),
            _ => Err(Error::Protocol(format!(
                "GetManifest answered no digest or mediaType: {value}"
            ))),
        }
    }

    /// The manifest as 0.2.x gives it: the chosen instance, converted to OCI; the digest is the
    /// manifest's as stored.
    pub fn get_manifest(&self, image: &OpenedImage) -> Result<Manifest> {
        self.manifest(json!({ "image": image.0 }))
    }

    /// The manifest or index exactly as stored, with its own digest.
    pub fn get_manifest_raw(&self, image: &OpenedImage) -> Result<Manifest> {
        self.manifest(json!({ "image": image.0, "raw": true }))
    }

    /// The instance of a multi-platform image for `platform`; `raw` keeps it as stored.
    pub fn get_manifest_for_platform(
        &self,
        image: &OpenedImage,
        platform: &Platform,
        raw: bool,
    ) -> Result<Manifest> {
        let mut params = json!({ "image": image.0, "platform": platform });
        if raw {
            params["raw"] = json!(true);
        }
        self.manifest(params)
    }

    /// The instances of a multi-platform image (empty for a single image).
    pub fn list_instances(&self, image: &OpenedImage) -> Result<Vec<Instance>> {
        #[derive(Deserialize)]
        struct Instances {
            instances: Vec<Instance>,
        }
        Ok(self
            .call_image::<Instances>(&m::LIST_INSTANCES, image)?
            .instances)
    }

    /// The tags of a repository (`docker://host/repo`, an `oci:` layout's ref names).
    pub fn list_tags(&self, reference: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Tags {
            tags: Vec<String>,
        }
        parse::<Tags>(
            "ListTags",
            self.call(&m::LIST_TAGS, json!({ "reference": reference }))?,
        )
        .map(|t| t.tags)
    }

    /// The full OCI image configuration, as bytes, with its digest.
    pub fn get_full_config(&self, image: &OpenedImage) -> Result<FullConfig> {
        let value = self.call(&m::GET_FULL_CONFIG, json!({ "image": image.0 }))?;
        let data = decode_base64("GetFullConfig", "data", &value)?;
        let digest = value
            .get("digest")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(FullConfig { digest, data })
    }

    /// Only the `config` member of the image configuration, as bytes.
    pub fn get_config(&self, image: &OpenedImage) -> Result<Vec<u8>> {
        decode_base64(
            "GetConfig",
            "data",
            &self.call(&m::GET_CONFIG, json!({ "image": image.0 }))?,
        )
    }

    /// The layers as the image reports them for copying.
    pub fn get_layer_info(&self, image: &OpenedImage) -> Result<Vec<LayerInfo>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Layer {
            digest: String,
            size: i64,
            media_type: String,
        }
        #[derive(Deserialize)]
        struct Layers {
            layers: Vec<Layer>,
        }
        let layers = self.call_image::<Layers>(&m::GET_LAYER_INFO, image)?.layers;
        Ok(layers
            .into_iter()
            .map(|l| LayerInfo {
                digest: l.digest,
                size: l.size,
                media_type: l.media_type,
            })
            .collect())
    }

    /// Sends any 1.0 request in the table and returns its result (for methods this crate has
    /// no wrapper for yet, such as GetSignatures).
    pub fn call_method(&self, method: &str, params: Map<String, Value>) -> Result<Value> {
        let method = m::METHODS_1
            .iter()
            .find(|spec| spec.name == method)
            .ok_or_else(|| Error::InvalidArgument(format!("{method} is not a 1.0 request")))?;
        self.connection
            .call(method, params)
            .map(|reply| reply.value)
    }

    /// Sends Shutdown and waits for its answer: the server then exits (a spawned proxy) or
    /// stops (the service).
    pub fn shutdown(&self) -> Result<()> {
        self.call(&m::SHUTDOWN, json!({})).map(|_| ())
    }

    /// Ends the connection. A spawned proxy gets Shutdown and must exit with status 0; a
    /// service connection is just closed, leaving the service to its other clients.
    /// Transfers still alive afterwards fail with [`Error::Closed`].
    pub fn finalize(self) -> Result<()> {
        if self.spawned {
            let answered = self.shutdown();
            self.connection.close("the proxy was finalized");
            answered?;
            self.connection.wait_child()
        } else {
            self.connection.close("the connection was finalized");
            Ok(())
        }
    }
}
