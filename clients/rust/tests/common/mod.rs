//! Test fixtures: which proxy to run, and a small OCI image layout written from scratch.
#![allow(dead_code)]

use std::env;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use layerpipe::{ImageProxy, ImageProxyConfig};

pub mod multi_arch;
pub mod registry;
pub mod service;
use serde_json::{json, Value};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

pub fn on_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The proxy under test: $LAYERPIPE_PROXY_PROGRAM, else skopeo from PATH.
pub fn proxy_program() -> Option<PathBuf> {
    match env::var_os("LAYERPIPE_PROXY_PROGRAM") {
        Some(program) if !program.is_empty() => Some(PathBuf::from(program)),
        _ => on_path("skopeo"),
    }
}

/// Gives up on a test whose tool is missing: a skip locally, a failure when CI=true.
pub fn skip(test: &str, why: &str) {
    if env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{test}: {why} (CI=true, so this is a failure, not a skip)");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// Returns from the test (skipping) when no proxy program is available.
#[macro_export]
macro_rules! require_proxy {
    ($test:expr) => {
        match common::proxy_program() {
            Some(program) => program,
            None => {
                common::skip(
                    $test,
                    "no proxy program: set LAYERPIPE_PROXY_PROGRAM or put skopeo on PATH",
                );
                return;
            }
        }
    };
}

pub fn config(program: &Path) -> ImageProxyConfig {
    ImageProxyConfig {
        program: program.to_path_buf(),
        // Short, so the truncated-blob tests notice the stall quickly.
        blob_stall_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    }
}

pub fn start(program: &Path) -> ImageProxy {
    ImageProxy::new_with_config(config(program))
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()))
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = env::temp_dir().join(format!(
            "layerpipe-rs-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(command: &mut Command) -> Vec<u8> {
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        output.status
    );
    output.stdout
}

/// `sha256:<hex>` of the bytes, computed by coreutils' sha256sum.
pub fn digest_of(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    format!("sha256:{}", &text[..64])
}

/// Deterministic bytes that gzip cannot shrink, so layers outgrow a pipe's buffer.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: digest_of(&bytes),
            bytes,
        }
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size() })
    }
}

/// An OCI image layout with one image tagged `latest`.
pub struct Layout {
    pub dir: TempDir,
    pub manifest: Blob,
    pub config: Blob,
    pub config_json: Value,
    pub layers: Vec<Blob>,
}

/// Tars `files` (name, contents) reproducibly with GNU tar.
fn tar_of(work: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let root = work.join(name);
    fs::create_dir_all(&root).unwrap();
    for (file, contents) in files {
        let path = root.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
    }
    run(Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
        ])
        .arg("-C")
        .arg(&root)
        .args(["-cf", "-", "."]))
}

fn gzip(work: &Path, data: &[u8]) -> Vec<u8> {
    let path = work.join("to-gzip");
    fs::write(&path, data).unwrap();
    run(Command::new("gzip").args(["-n", "-c"]).arg(&path))
}

pub fn host_architecture() -> &'static str {
    match env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl Layout {
    /// Three layers: small gzip files, 1.5 MiB of gzip noise, 300 KiB plain tar.
    pub fn build() -> Layout {
        let dir = TempDir::new("oci");
        let work = TempDir::new("work");
        let tars = [
            tar_of(
                work.path(),
                "l1",
                &[
                    ("etc/greeting", b"hello from layerpipe\n".to_vec()),
                    ("usr/share/doc/readme", b"tiny layer\n".to_vec()),
                ],
            ),
            tar_of(
                work.path(),
                "l2",
                &[("data/noise.bin", noise(1536 * 1024, 2))],
            ),
            tar_of(
                work.path(),
                "l3",
                &[("data/more.bin", noise(300 * 1024, 3))],
            ),
        ];
        let layers = vec![
            Blob::new(OCI_LAYER_GZIP, gzip(work.path(), &tars[0])),
            Blob::new(OCI_LAYER_GZIP, gzip(work.path(), &tars[1])),
            Blob::new(OCI_LAYER_TAR, tars[2].clone()),
        ];
        let diff_ids: Vec<String> = tars.iter().map(|t| digest_of(t)).collect();
        let config_json = json!({
            "created": "2024-01-02T03:04:05Z",
            "architecture": host_architecture(),
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/bin:/bin", "GREETING=hello"],
                "Cmd": ["/bin/sh", "-c", "cat /etc/greeting"],
                "WorkingDir": "/data",
                "Labels": { "org.example.test": "layerpipe" }
            },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": [
                { "created": "2024-01-02T03:04:05Z", "created_by": "layer one" },
                { "created": "2024-01-02T03:04:05Z", "created_by": "layer two" },
                { "created": "2024-01-02T03:04:05Z", "created_by": "layer three" }
            ]
        });
        let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&config_json).unwrap());
        let manifest_json = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
            "annotations": { "org.example.note": "written by the layerpipe Rust tests" }
        });
        // Pretty-printed: the digest must be of these exact bytes, not of a re-encoding.
        let manifest = Blob::new(
            OCI_MANIFEST,
            serde_json::to_vec_pretty(&manifest_json).unwrap(),
        );

        let layout = Layout {
            dir,
            manifest,
            config,
            config_json,
            layers,
        };
        for blob in layout.all_blobs() {
            let path = layout.blob_path(&blob.digest);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, &blob.bytes).unwrap();
        }
        let mut manifest_descriptor = layout.manifest.descriptor();
        manifest_descriptor["annotations"] =
            json!({ "org.opencontainers.image.ref.name": "latest" });
        let index = json!({ "schemaVersion": 2, "manifests": [manifest_descriptor] });
        fs::write(
            layout.path().join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        fs::write(
            layout.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        layout
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `oci:DIR:latest`.
    pub fn reference(&self) -> String {
        format!("oci:{}:latest", self.path().display())
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let (algorithm, hex) = digest.split_once(':').unwrap();
        self.path().join("blobs").join(algorithm).join(hex)
    }

    pub fn all_blobs(&self) -> Vec<&Blob> {
        let mut blobs = vec![&self.manifest, &self.config];
        blobs.extend(self.layers.iter());
        blobs
    }

    /// Copies the image to a `dir:` directory with `skopeo copy`; None (after skip()) when
    /// skopeo is not installed.
    pub fn to_dir_transport(&self, test: &str) -> Option<(TempDir, String)> {
        let skopeo = match on_path("skopeo") {
            Some(skopeo) => skopeo,
            None => {
                skip(test, "skopeo is needed to write a dir: image");
                return None;
            }
        };
        let target = TempDir::new("dir");
        run(Command::new(skopeo)
            .args(["--insecure-policy", "copy", "--quiet"])
            .arg(self.reference())
            .arg(format!("dir:{}", target.path().display())));
        let reference = format!("dir:{}", target.path().display());
        Some((target, reference))
    }
}

/// The proxy under test when it is layerpipe: protocol 1.0 tests skip for skopeo (0.2.x only).
pub fn layerpipe_program(test: &str) -> Option<PathBuf> {
    let program = match proxy_program() {
        Some(program) => program,
        None => {
            skip(test, "no proxy program: set LAYERPIPE_PROXY_PROGRAM");
            return None;
        }
    };
    if program.file_name().map_or(false, |name| name == "skopeo") {
        // Not a failure under CI: skopeo is run for the 0.2.x suites only.
        eprintln!("SKIPPED {test}: protocol 1.0 is layerpipe's; the program is skopeo");
        return None;
    }
    Some(program)
}

/// Returns from the test (skipping) unless the proxy program is layerpipe.
#[macro_export]
macro_rules! require_layerpipe {
    ($test:expr) => {
        match common::layerpipe_program($test) {
            Some(program) => program,
            None => return,
        }
    };
}

/// A 1.0 connection to a spawned `PROGRAM experimental-image-proxy`.
pub fn start_1(program: &Path, options: layerpipe::v1::Options) -> layerpipe::v1::ImageProxy {
    layerpipe::v1::ImageProxy::spawn(config(program), options)
        .unwrap_or_else(|e| panic!("starting {} at 1.0: {e}", program.display()))
}
