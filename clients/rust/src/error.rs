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

/// A protocol 1.0 JSON-RPC error code (`RpcErrorCodes` in `protocol/jsonrpc.ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcErrorCode {
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    /// Anything else the server could not do.
    ServerError,
    ImageNotFound,
    AuthenticationFailed,
    /// A transient fault: the call may succeed if repeated.
    Retryable,
    /// A blob's size or digest did not match.
    VerificationFailed,
    /// The reader of a transfer went away before its end.
    BrokenPipe,
    PolicyDenied,
    NotInitialized,
    Cancelled,
    /// A code this crate does not know (a newer server).
    Unknown(i64),
}

/// Every known code with its name in `RpcErrorCodes`, in that table's order.
pub const RPC_ERROR_CODES: &[(RpcErrorCode, &str, i64)] = &[
    (RpcErrorCode::ParseError, "ParseError", -32700),
    (RpcErrorCode::InvalidRequest, "InvalidRequest", -32600),
    (RpcErrorCode::MethodNotFound, "MethodNotFound", -32601),
    (RpcErrorCode::InvalidParams, "InvalidParams", -32602),
    (RpcErrorCode::InternalError, "InternalError", -32603),
    (RpcErrorCode::ServerError, "ServerError", -32000),
    (RpcErrorCode::ImageNotFound, "ImageNotFound", -32001),
    (
        RpcErrorCode::AuthenticationFailed,
        "AuthenticationFailed",
        -32002,
    ),
    (RpcErrorCode::Retryable, "Retryable", -32003),
    (
        RpcErrorCode::VerificationFailed,
        "VerificationFailed",
        -32004,
    ),
    (RpcErrorCode::BrokenPipe, "BrokenPipe", -32005),
    (RpcErrorCode::PolicyDenied, "PolicyDenied", -32006),
    (RpcErrorCode::NotInitialized, "NotInitialized", -32007),
    (RpcErrorCode::Cancelled, "Cancelled", -32800),
];

impl RpcErrorCode {
    /// Maps a wire code; unknown ones are kept as `Unknown`.
    pub fn from_code(code: i64) -> RpcErrorCode {
        RPC_ERROR_CODES
            .iter()
            .find(|(_, _, c)| *c == code)
            .map_or(RpcErrorCode::Unknown(code), |(known, _, _)| *known)
    }

    /// The number on the wire.
    pub fn code(self) -> i64 {
        match self {
            RpcErrorCode::Unknown(code) => code,
            known => RPC_ERROR_CODES
                .iter()
                .find(|(k, _, _)| *k == known)
                .map_or(0, |(_, _, code)| *code),
        }
    }

    /// The name in `RpcErrorCodes`, or "Unknown".
    pub fn name(self) -> &'static str {
        RPC_ERROR_CODES
            .iter()
            .find(|(k, _, _)| *k == self)
            .map_or("Unknown", |(_, name, _)| *name)
    }
}

impl fmt::Display for RpcErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name(), self.code())
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
    /// A protocol 1.0 server answered a request with a JSON-RPC error (or ended a transfer
    /// with one).
    Rpc {
        method: String,
        code: RpcErrorCode,
        message: String,
        /// `data.error_code`, the 0.2.x classification (`Other` when absent).
        error_code: ErrorCode,
        /// `data.kind`, layerpipe's stable error name (e.g. `LP_ERR_DIGEST_MISMATCH`).
        kind: Option<String>,
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
            Error::Rpc { error_code, .. } => Some(*error_code),
            _ => None,
        }
    }

    /// The JSON-RPC error code of a protocol 1.0 failure.
    pub fn rpc_code(&self) -> Option<RpcErrorCode> {
        match self {
            Error::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the proxy classified the failure as transient.
    pub fn is_retryable(&self) -> bool {
        self.error_code() == Some(ErrorCode::Retryable)
            || self.rpc_code() == Some(RpcErrorCode::Retryable)
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
            Error::Rpc {
                method,
                code,
                message,
                ..
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
