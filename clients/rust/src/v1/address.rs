//! Service addresses, as `layerpipe serve --listen` reads them.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The service's default socket under `$XDG_RUNTIME_DIR` (`DEFAULT_SOCKET_NAME`).
const DEFAULT_SOCKET_NAME: &str = "layerpipe/layerpipe.sock";

/// Where the service listens for `address`, as `layerpipe serve --listen` reads it.
pub(crate) fn service_path(address: &str, runtime_dir: Option<&Path>) -> Result<PathBuf> {
    match address.strip_prefix("unix:") {
        Some("") => match runtime_dir {
            Some(dir) if dir.is_absolute() => Ok(dir.join(DEFAULT_SOCKET_NAME)),
            _ => Err(Error::InvalidArgument(format!(
                "{address:?} names the default socket under $XDG_RUNTIME_DIR, which is not an absolute path here"
            ))),
        },
        Some(path) => Ok(PathBuf::from(path)),
        None => Err(Error::InvalidArgument(format!(
            "{address:?} is not a service address (unix:PATH)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_addresses_name_a_socket_path() {
        let run = Some(Path::new("/run/user/1000"));
        assert_eq!(
            service_path("unix:/tmp/s.sock", run).unwrap(),
            PathBuf::from("/tmp/s.sock")
        );
        assert_eq!(
            service_path("unix:", run).unwrap(),
            PathBuf::from("/run/user/1000/layerpipe/layerpipe.sock")
        );
        assert!(service_path("unix:", None).is_err());
        assert!(service_path("unix:", Some(Path::new("relative"))).is_err());
        assert!(service_path("tcp:localhost:1", run).is_err());
    }
}
