//! How the proxy process is started.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::io::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where `auth_data` appears in the child, as `/proc/self/fd/N` (the number skopeo's users pick).
const AUTH_DATA_FD: RawFd = 100;

/// Options for starting the proxy. Build it with struct update syntax:
/// `ImageProxyConfig { no_creds: true, ..Default::default() }`.
#[derive(Debug)]
pub struct ImageProxyConfig {
    /// Program to run; `layerpipe` by default, `skopeo` works too. Looked up in `PATH`.
    pub program: PathBuf,
    /// Arguments appended after all the flags below.
    pub extra_args: Vec<OsString>,
    /// `--debug`: verbose logs on the child's stderr.
    pub debug: bool,
    /// `--authfile PATH`.
    pub authfile: Option<PathBuf>,
    /// An already open registry auth file, handed to the child (wins over `authfile`).
    pub auth_data: Option<File>,
    /// `--no-creds`: access registries anonymously.
    pub no_creds: bool,
    /// `--cert-dir DIR`.
    pub cert_dir: Option<PathBuf>,
    /// `--decryption-key KEY`, repeated (not understood by skopeo before 1.10).
    pub decryption_keys: Vec<String>,
    /// `--tls-verify=false`.
    pub insecure_skip_tls_verification: bool,
    /// `--insecure-policy`: skip the signature policy check.
    pub insecure_policy: bool,
    /// `--user-agent-prefix PREFIX` (layerpipe and newer skopeo).
    pub user_agent_prefix: Option<String>,
    /// Serve the socket on this fd of the child (`--sockfd N`) instead of its stdin.
    pub sockfd: Option<RawFd>,
    /// A blob whose pipe stays empty this long gets its FinishPipe sent while it is still being
    /// read, so that a blob ending short (wrong size, truncated source) cannot hang the reader.
    /// `None` means one second. Only affects how long other requests may wait, never results.
    pub blob_stall_timeout: Option<Duration>,
}

impl Default for ImageProxyConfig {
    fn default() -> Self {
        ImageProxyConfig {
            program: PathBuf::from("layerpipe"),
            extra_args: Vec::new(),
            debug: false,
            authfile: None,
            auth_data: None,
            no_creds: false,
            cert_dir: None,
            decryption_keys: Vec::new(),
            insecure_skip_tls_verification: false,
            insecure_policy: false,
            user_agent_prefix: None,
            sockfd: None,
            blob_stall_timeout: None,
        }
    }
}

impl ImageProxyConfig {
    pub(crate) fn stall_timeout(&self) -> Duration {
        self.blob_stall_timeout.unwrap_or(Duration::from_secs(1))
    }

    /// The command line after the program name.
    pub(crate) fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["experimental-image-proxy".into()];
        if self.debug {
            args.push("--debug".into());
        }
        if self.auth_data.is_some() {
            args.push("--authfile".into());
            args.push(format!("/proc/self/fd/{}", self.auth_data_fd()).into());
        } else if let Some(path) = &self.authfile {
            args.push("--authfile".into());
            args.push(path.into());
        }
        if self.no_creds {
            args.push("--no-creds".into());
        }
        if let Some(dir) = &self.cert_dir {
            args.push("--cert-dir".into());
            args.push(dir.into());
        }
        for key in &self.decryption_keys {
            args.push("--decryption-key".into());
            args.push(key.into());
        }
        if self.insecure_skip_tls_verification {
            args.push("--tls-verify=false".into());
        }
        if self.insecure_policy {
            args.push("--insecure-policy".into());
        }
        if let Some(prefix) = &self.user_agent_prefix {
            args.push("--user-agent-prefix".into());
            args.push(prefix.into());
        }
        if let Some(fd) = self.sockfd {
            args.push("--sockfd".into());
            args.push(fd.to_string().into());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn auth_data_fd(&self) -> RawFd {
        if self.sockfd == Some(AUTH_DATA_FD) {
            AUTH_DATA_FD + 1
        } else {
            AUTH_DATA_FD
        }
    }

    /// Starts the proxy with `child_socket` as its stdin or as fd `sockfd`.
    ///
    /// The child is asked to receive SIGTERM when its parent goes away. Linux ties that to
    /// the *thread* that forks, so create the proxy from a thread that outlives it.
    pub(crate) fn spawn(&self, child_socket: OwnedFd) -> io::Result<Child> {
        let mut command = Command::new(&self.program);
        command.args(self.args()).stdout(Stdio::null());

        // (source fd in the parent, fd number wanted in the child), applied after fork.
        let mut placements: Vec<(RawFd, RawFd)> = Vec::new();
        let _socket_kept_open_until_spawned;
        match self.sockfd {
            None => {
                command.stdin(Stdio::from(child_socket));
            }
            Some(target) => {
                if target < 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "sockfd must not be negative",
                    ));
                }
                command.stdin(Stdio::null());
                placements.push((child_socket.as_raw_fd(), target));
                _socket_kept_open_until_spawned = child_socket;
            }
        }
        if let Some(file) = &self.auth_data {
            placements.push((file.as_raw_fd(), self.auth_data_fd()));
        }

        let parent_pid = std::process::id() as libc::pid_t;
        debug_assert!(placements.len() <= 2);
        // SAFETY: the closure only makes async-signal-safe calls (prctl, getppid, dup2,
        // fcntl) and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent_pid {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                // Move every source above all targets first, so that placing one fd can
                // never overwrite the source of another.
                let floor = placements.iter().map(|p| p.1).max().unwrap_or(0) + 1;
                let mut moved: [RawFd; 2] = [-1; 2];
                for (slot, &(source, _)) in moved.iter_mut().zip(placements.iter()) {
                    *slot = libc::fcntl(source, libc::F_DUPFD_CLOEXEC, floor);
                    if *slot < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                // dup2 clears close-on-exec on the target, so these survive exec.
                for (&source, &(_, target)) in moved.iter().zip(placements.iter()) {
                    if libc::dup2(source, target) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        command.spawn()
    }
}
