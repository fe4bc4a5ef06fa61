//! Debian's docker-registry on a free loopback port (plain HTTP, no auth), removed when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{on_path, skip, TempDir};

pub struct Registry {
    child: Child,
    pub host: String,
    _dir: TempDir,
}

fn answers_v2(host: &str) -> bool {
    let mut stream = match TcpStream::connect(host) {
        Ok(stream) => stream,
        Err(_) => return false,
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

impl Registry {
    /// None (after a skip) without docker-registry or skopeo (which pushes the images).
    pub fn start(test: &str) -> Option<Registry> {
        let binary: PathBuf = match on_path("docker-registry") {
            Some(binary) => binary,
            None => {
                skip(test, "docker-registry is not installed");
                return None;
            }
        };
        if on_path("skopeo").is_none() {
            skip(test, "skopeo is needed to push to the registry");
            return None;
        }
        let dir = TempDir::new("registry");
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let host = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            // YAML is a superset of JSON.
            let text = serde_json::json!({
                "version": "0.1",
                "log": { "level": "error", "accesslog": { "disabled": true } },
                "storage": { "filesystem": { "rootdirectory": dir.path().join("data") },
                             "delete": { "enabled": true }, "redirect": { "disable": true } },
                "http": { "addr": host, "secret": "layerpipe-rust-test" },
            });
            std::fs::write(&config, text.to_string()).unwrap();
            let mut child = Command::new(&binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break; // most likely the port was taken meanwhile: another one
                }
                if answers_v2(&host) {
                    return Some(Registry {
                        child,
                        host,
                        _dir: dir,
                    });
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }

    /// `docker://HOST/REPO`.
    pub fn reference(&self, repository_and_tag: &str) -> String {
        format!("docker://{}/{repository_and_tag}", self.host)
    }

    /// Pushes `source` (any transport skopeo reads) to `repository_and_tag`.
    pub fn push(&self, source: &str, repository_and_tag: &str) {
        let status = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
            ])
            .arg(source)
            .arg(self.reference(repository_and_tag))
            .status()
            .unwrap();
        assert!(status.success(), "pushing {source}: {status}");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
