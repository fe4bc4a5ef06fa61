//! The one error type of this crate.

use std::fmt;
use std::io;
use std::process::ExitStatus;

use crate::version::ProtocolVersion;

/// Classification of a failure reported by the proxy (`error_code` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Writing to one of our pipes failed because we closed the read end.
    Epipe,
    /// A transient fault (timeout, connection reset, 429/5xx...): the call may succeed if repeated.
    Retryable,
    /// Anything else.
    Other,
}

impl ErrorCode {
    /// Maps the wire string. Servers older than 0.2.8 send no code at all, and an unknown
    /// code from a newer server is not something we can act on: both become `Other`.
    pub fn from_wire(code: &str) -> ErrorCode {
        match code {
            "EPIPE" => ErrorCode::Epipe,
            "retryable" => ErrorCode::Retryable,
            _ => ErrorCode::Other,
        }
    }

    /// The string used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Epipe => "EPIPE",
            ErrorCode::Retryable => "retryable",
            ErrorCode::Other => "other",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong when talking to the proxy.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The proxy answered a request with `success: false` (or a GetRawBlob error pipe
    /// carried a failure).
    Proxy {
        method: String,
        code: ErrorCode,
        message: String,
    },
    /// The proxy's protocol version is not one this crate speaks (`^0.2.3`).
    UnsupportedVersion(String),
    /// The method appeared in a later protocol version than the proxy speaks.
    MethodUnsupported {
        method: &'static str,
        since: ProtocolVersion,
        version: ProtocolVersion,
    },
    /// The proxy broke the protocol: malformed reply, wrong file descriptors, ...
    Protocol(String),
    /// Arguments the wire does not accept for the method (e.g. a size above 2^53-1); nothing
    /// was sent.
    InvalidArgument(String),
    /// A system call failed while talking to the proxy process.
    Io { context: String, source: io::Error },
    /// The proxy process ended with a failure status.
    ProxyExited(ExitStatus),
    /// The proxy was already shut down by `finalize`, or its connection broke earlier.
    Closed(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The wire's error code when the proxy reported the failure, `None` for local failures.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Proxy { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the proxy classified the failure as transient.
    pub fn is_retryable(&self) -> bool {
        self.error_code() == Some(ErrorCode::Retryable)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Proxy {
                method,
                code,
                message,
            } => write!(f, "{method} failed ({code}): {message}"),
            Error::UnsupportedVersion(v) => {
                write!(f, "proxy speaks protocol {v}, this client needs ^0.2.3")
            }
            Error::MethodUnsupported {
                method,
                since,
                version,
            } => write!(
                f,
                "{method} needs protocol {since} or later, the proxy speaks {version}"
            ),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::ProxyExited(status) => write!(f, "proxy exited with {status}"),
            Error::Closed(why) => write!(f, "proxy connection closed: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
