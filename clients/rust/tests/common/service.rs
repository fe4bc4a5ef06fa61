//! `layerpipe serve --listen unix:PATH` as a child process.

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use layerpipe::v1::{self, Options, Payload};

use super::{skip, TempDir};

/// A running `serve --listen`, stopped with SIGTERM when dropped.
pub struct Service {
    child: Child,
    pub socket: PathBuf,
    _dir: TempDir,
}

impl Service {
    /// None (after a skip with the reason) when the program cannot serve on a socket.
    pub fn start(test: &str, program: &Path, extra_args: &[&str]) -> Option<Service> {
        let dir = TempDir::new("service");
        let socket = dir.path().join("layerpipe.sock");
        let mut child = Command::new(program)
            .arg("serve")
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
                let reason = stderr.lines().next().unwrap_or("").to_string();
                skip(
                    test,
                    &format!("`serve --listen` exited with {status}: {reason}"),
                );
                return None;
            }
            let ready = fs::metadata(&socket).map_or(false, |m| m.file_type().is_socket());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                socket.display()
            );
            thread::sleep(Duration::from_millis(50));
        }
        Some(Service {
            child,
            socket,
            _dir: dir,
        })
    }

    pub fn address(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    pub fn connect(&self, payload: Payload) -> v1::ImageProxy {
        v1::ImageProxy::connect_with(
            &self.address(),
            Options {
                payloads: vec![payload],
                window: None,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.address()))
    }

    /// SIGTERM, then the exit status within `limit`.
    pub fn terminate(mut self, limit: Duration) -> std::process::ExitStatus {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the service ignored SIGTERM for {limit:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
