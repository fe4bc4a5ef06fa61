//! The protocol version answered by Initialize, and which methods each version has.

use std::fmt;

use crate::error::{Error, Result};

/// A `major.minor.patch` protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl ProtocolVersion {
    pub const fn new(major: u64, minor: u64, patch: u64) -> ProtocolVersion {
        ProtocolVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses `X.Y.Z`, ignoring a `-pre` or `+build` suffix.
    pub fn parse(text: &str) -> Option<ProtocolVersion> {
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        let version = ProtocolVersion::new(parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() {
            return None;
        }
        Some(version)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Oldest version accepted: GetFullConfig arrived in 0.2.3.
pub const MIN_VERSION: ProtocolVersion = ProtocolVersion::new(0, 2, 3);
/// First version refused: 0.3 may change the wire incompatibly.
pub const NEXT_INCOMPATIBLE: ProtocolVersion = ProtocolVersion::new(0, 3, 0);

/// Checks Initialize's answer against `^0.2.3`.
pub(crate) fn check_supported(text: &str) -> Result<ProtocolVersion> {
    match ProtocolVersion::parse(text) {
        Some(v) if v >= MIN_VERSION && v < NEXT_INCOMPATIBLE => Ok(v),
        _ => Err(Error::UnsupportedVersion(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let v = ProtocolVersion::parse("0.2.8").unwrap();
        assert_eq!(v, ProtocolVersion::new(0, 2, 8));
        assert!(v < ProtocolVersion::parse("0.2.10-dev").unwrap());
        assert_eq!(ProtocolVersion::parse("0.2.10+x").unwrap().patch, 10);
        assert!(ProtocolVersion::parse("0.2").is_none());
        assert!(ProtocolVersion::parse("0.2.x").is_none());
        assert!(ProtocolVersion::parse("0.2.3.4").is_none());
    }

    #[test]
    fn accepts_caret_0_2_3_only() {
        assert!(check_supported("0.2.3").is_ok());
        assert!(check_supported("0.2.8").is_ok());
        assert!(check_supported("0.2.99").is_ok());
        for bad in ["0.2.2", "0.3.0", "1.0.0", "0.1.9", "", "garbage"] {
            assert!(
                matches!(check_supported(bad), Err(Error::UnsupportedVersion(_))),
                "{bad} accepted"
            );
        }
    }
}
