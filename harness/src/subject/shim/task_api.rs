//! The task API as containerd 2.x negotiates it from a shim's reply to `start`.
//!
//! containerd (`core/runtime/v2/shim.go`, `parseStartResponse`) trims the reply and
//! decodes it as JSON bootstrap parameters (`{"version":3,"address":"unix://...",
//! "protocol":"ttrpc"}`); a reply that is not such JSON, or names a version below 2, is
//! a plain address of a legacy shim: ttrpc, task API **2**. A version above 3 is refused
//! (`unsupported shim version (N): not implemented`). The version picks the ttrpc
//! service: `containerd.task.v2.Task` or `containerd.task.v3.Task` (same messages).
//! Kata's Go shim (3.x) prints a plain address and serves v2 only.

use serde::{Deserialize, Serialize};

/// The newest task API containerd 2.x speaks (`CurrentShimVersion`).
pub const CURRENT: u32 = 3;

/// What containerd took from the bootstrap reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Task API version: 2 or 3.
    pub version: u32,
    pub address: String,
    pub protocol: String,
    /// The reply was JSON bootstrap parameters (not a plain address).
    pub json: bool,
}

impl Bootstrap {
    /// The ttrpc service of this task API version.
    pub fn service(&self) -> &'static str {
        service(self.version)
    }

    /// One line for the report: `task API v2 (plain address)`.
    pub fn describe(&self) -> String {
        format!(
            "task API v{} ({}), {}",
            self.version,
            if self.json {
                "JSON bootstrap reply"
            } else {
                "plain address"
            },
            self.service()
        )
    }
}

pub fn service(version: u32) -> &'static str {
    if version >= 3 {
        "containerd.task.v3.Task"
    } else {
        "containerd.task.v2.Task"
    }
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    version: i64,
    #[serde(default)]
    address: String,
    #[serde(default)]
    protocol: String,
}

/// A task API version containerd does not speak (its wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported shim version ({0}): not implemented")]
pub struct UnsupportedVersion(pub u32);

/// containerd's `parseStartResponse`, on `start`'s stdout.
pub fn parse(reply: &str) -> Result<Bootstrap, UnsupportedVersion> {
    let reply = reply.trim();
    let b = match serde_json::from_str::<Params>(reply) {
        Ok(p) if p.version >= 2 => Bootstrap {
            version: p.version as u32,
            address: p.address,
            protocol: p.protocol,
            json: true,
        },
        _ => Bootstrap {
            version: 2,
            address: reply.to_owned(),
            protocol: "ttrpc".into(),
            json: false,
        },
    };
    if b.version > CURRENT {
        return Err(UnsupportedVersion(b.version));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_address_is_task_api_2() {
        let b = parse("unix:///run/containerd/s/abc\n").unwrap();
        assert_eq!(b.version, 2);
        assert_eq!(b.address, "unix:///run/containerd/s/abc");
        assert_eq!(b.service(), "containerd.task.v2.Task");
        assert!(!b.json);
    }

    #[test]
    fn a_json_reply_means_what_it_says() {
        let b = parse(r#"{"version":3,"address":"unix:///s/x","protocol":"ttrpc"}"#).unwrap();
        assert_eq!(
            (b.version, b.address.as_str(), b.json),
            (3, "unix:///s/x", true)
        );
        assert_eq!(b.service(), "containerd.task.v3.Task");
        let b = parse(r#"{"version":2,"address":"unix:///s/y","protocol":"ttrpc"}"#).unwrap();
        assert_eq!(b.service(), "containerd.task.v2.Task");
    }

    #[test]
    fn json_below_version_2_is_a_legacy_address() {
        let b = parse(r#"{"version":1,"address":"unix:///s/x"}"#).unwrap();
        assert_eq!(b.version, 2);
        assert!(!b.json);
        assert_eq!(b.address, r#"{"version":1,"address":"unix:///s/x"}"#);
    }

    #[test]
    fn a_newer_version_is_refused_as_containerd_does() {
        let e = parse(r#"{"version":4,"address":"unix:///s/x","protocol":"ttrpc"}"#).unwrap_err();
        assert_eq!(e, UnsupportedVersion(4));
        assert_eq!(
            e.to_string(),
            "unsupported shim version (4): not implemented"
        );
    }
}
