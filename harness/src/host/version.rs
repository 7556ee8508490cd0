//! Kernel versions: parsing `uname -r` style releases ("5.4.0-182-generic",
//! "6.12.118+deb13-amd64") and the short versions used in the data files ("5.14").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// `major.minor.patch` of a kernel release; distro suffixes are ignored for feature checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KernelVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        KernelVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parse a full release as `uname -r` prints it: `MAJOR.MINOR[.PATCH][SUFFIX]` where the
    /// suffix starts with one of `-+~_` (or `.` after the patch, as in `3.10.0.el7`) and holds
    /// no whitespace. Returns `None` for anything else.
    pub fn parse_release(release: &str) -> Option<Self> {
        if release.is_empty() || release.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (major, rest) = leading_number(release)?;
        let rest = rest.strip_prefix('.')?;
        let (minor, rest) = leading_number(rest)?;
        let (patch, rest) = match rest.strip_prefix('.') {
            Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => leading_number(r)?,
            _ => (0, rest),
        };
        let suffix_ok = rest.is_empty()
            || (rest.starts_with(['-', '+', '~', '_', '.'])
                && rest[1..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-+~_.".contains(c))
                && rest.len() > 1);
        if !suffix_ok || major == 0 || major > 99 {
            return None;
        }
        Some(KernelVersion {
            major,
            minor,
            patch,
        })
    }
}

fn leading_number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 || end > 6 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// A kernel version in a data file that is not `MAJOR.MINOR[.PATCH]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    #[error("bad {part} in version `{version}`")]
    BadPart { part: &'static str, version: String },
    #[error("empty version `{0}`")]
    Empty(String),
    #[error("version `{0}` needs MAJOR.MINOR")]
    NoMinor(String),
    #[error("version `{0}` has more than three parts")]
    TooManyParts(String),
}

impl FromStr for KernelVersion {
    type Err = VersionError;
    /// Strict short form used in data files: `5.14` or `5.14.3`.
    fn from_str(s: &str) -> Result<Self, VersionError> {
        let mut parts = s.split('.');
        let mut next = |part: &'static str| {
            parts
                .next()
                .map(|p| {
                    p.parse::<u32>().map_err(|_| VersionError::BadPart {
                        part,
                        version: s.to_owned(),
                    })
                })
                .transpose()
        };
        let major = next("major")?.ok_or_else(|| VersionError::Empty(s.to_owned()))?;
        let minor = next("minor")?.ok_or_else(|| VersionError::NoMinor(s.to_owned()))?;
        let patch = next("patch")?.unwrap_or(0);
        if parts.next().is_some() {
            return Err(VersionError::TooManyParts(s.to_owned()));
        }
        Ok(KernelVersion {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.patch == 0 {
            write!(f, "{}.{}", self.major, self.minor)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
        }
    }
}

impl<'de> Deserialize<'de> for KernelVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::KernelVersion as V;
    use rstest::rstest;

    #[rstest]
    #[case("5.4.0-182-generic", V::new(5, 4, 0))]
    #[case("3.10.0-1160.el7.x86_64", V::new(3, 10, 0))]
    #[case("6.12.118+deb13-amd64", V::new(6, 12, 118))]
    #[case("5.10.230", V::new(5, 10, 230))]
    #[case("6.1", V::new(6, 1, 0))]
    #[case("5.14.21-150400.24.136-default", V::new(5, 14, 21))]
    fn parses_real_releases(#[case] release: &str, #[case] want: V) {
        assert_eq!(V::parse_release(release), Some(want));
    }

    #[rstest]
    #[case("")]
    #[case("5")]
    #[case("five.ten")]
    #[case("5.x")]
    #[case("5.10 generic")]
    #[case("5.10-")]
    #[case("0.1")]
    fn rejects_garbage(#[case] release: &str) {
        assert_eq!(V::parse_release(release), None);
    }

    #[test]
    fn orders_numerically() {
        assert!(V::new(5, 10, 0) < V::new(5, 14, 0));
        assert!(V::new(4, 20, 0) < V::new(5, 0, 0));
        assert_eq!("5.14".parse::<V>().unwrap(), V::new(5, 14, 0));
    }
}
