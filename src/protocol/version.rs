//! Protocol versions: the invocation protocol versions this server speaks (V5–V7), how one is
//! picked for a deployment, and the endpoint-manifest versions used during discovery.
//!
//! This module owns the content-type strings of both protocols and the negotiation rule.
//!
//! Invariants:
//! - Only V5, V6 and V7 are representable; V7 is picked only when explicitly enabled.
//! - An invocation content type is matched byte for byte (the protocol allows no parameters).
//! - [`negotiate`] only returns a version inside the deployment's advertised range.

use std::fmt;

/// The invocation protocol versions this server can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceProtocolVersion {
    V5 = 5,
    V6 = 6,
    V7 = 7,
}

/// Lowest version a deployment must support to be registered.
pub const SERVICE_PROTOCOL_VERSION_MIN: ServiceProtocolVersion = ServiceProtocolVersion::V5;
/// Highest version this server can speak (only with V7 enabled).
pub const SERVICE_PROTOCOL_VERSION_MAX: ServiceProtocolVersion = ServiceProtocolVersion::V7;
/// Highest version picked when V7 is not enabled.
pub const SERVICE_PROTOCOL_VERSION_DEFAULT_MAX: ServiceProtocolVersion = ServiceProtocolVersion::V6;

impl ServiceProtocolVersion {
    /// All versions, ascending.
    pub const ALL: [ServiceProtocolVersion; 3] =
        [ServiceProtocolVersion::V5, ServiceProtocolVersion::V6, ServiceProtocolVersion::V7];

    /// The version number.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The version with this number, if supported.
    pub fn from_i32(version: i32) -> Option<Self> {
        match version {
            5 => Some(ServiceProtocolVersion::V5),
            6 => Some(ServiceProtocolVersion::V6),
            7 => Some(ServiceProtocolVersion::V7),
            _ => None,
        }
    }

    /// `application/vnd.restate.invocation.vN`, sent as both `content-type` and `accept`.
    pub fn content_type(self) -> &'static str {
        match self {
            ServiceProtocolVersion::V5 => "application/vnd.restate.invocation.v5",
            ServiceProtocolVersion::V6 => "application/vnd.restate.invocation.v6",
            ServiceProtocolVersion::V7 => "application/vnd.restate.invocation.v7",
        }
    }

    /// The version whose content type is exactly `content_type`.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.content_type() == content_type)
    }

    /// Whether `StartMessage.random_seed` and `Failure.metadata` exist (V6+).
    pub fn has_random_seed(self) -> bool {
        self >= ServiceProtocolVersion::V6
    }

    /// Whether suspensions use the `Future` tree, `AwaitingOnMessage` exists, run proposals
    /// may request an ack and `StartMessage` carries the idempotency key (V7).
    pub fn has_futures_and_run_ack(self) -> bool {
        self >= ServiceProtocolVersion::V7
    }
}

impl fmt::Display for ServiceProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V{}", self.as_i32())
    }
}

/// Whether a deployment advertising `[min, max]` can be registered: the range is well formed
/// (`1 <= min <= max`) and overlaps V5..=V7.
pub fn is_discoverable_range(min: i32, max: i32) -> bool {
    1 <= min
        && min <= max
        && min <= SERVICE_PROTOCOL_VERSION_MAX.as_i32()
        && max >= SERVICE_PROTOCOL_VERSION_MIN.as_i32()
}

/// Picks the version for a new invocation on a deployment advertising `[min, max]`: the
/// highest version up to the cap (V7 if `v7_enabled`, else V6), `None` if the range does not
/// reach V5 or starts above the cap.
pub fn negotiate(min: i32, max: i32, v7_enabled: bool) -> Option<ServiceProtocolVersion> {
    let cap = if v7_enabled {
        SERVICE_PROTOCOL_VERSION_MAX
    } else {
        SERVICE_PROTOCOL_VERSION_DEFAULT_MAX
    };
    if min > cap.as_i32() || max < SERVICE_PROTOCOL_VERSION_MIN.as_i32() || min > max {
        return None;
    }
    let picked = ServiceProtocolVersion::from_i32(max.min(cap.as_i32()))?;
    debug_assert!(min <= picked.as_i32() && picked.as_i32() <= max);
    Some(picked)
}

/// Versions of the endpoint manifest returned by `GET /discover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ManifestVersion {
    V1 = 1,
    V2 = 2,
    V3 = 3,
    V4 = 4,
}

impl ManifestVersion {
    /// All versions, ascending.
    pub const ALL: [ManifestVersion; 4] =
        [ManifestVersion::V1, ManifestVersion::V2, ManifestVersion::V3, ManifestVersion::V4];

    /// `application/vnd.restate.endpointmanifest.vN+json`.
    pub fn content_type(self) -> &'static str {
        match self {
            ManifestVersion::V1 => "application/vnd.restate.endpointmanifest.v1+json",
            ManifestVersion::V2 => "application/vnd.restate.endpointmanifest.v2+json",
            ManifestVersion::V3 => "application/vnd.restate.endpointmanifest.v3+json",
            ManifestVersion::V4 => "application/vnd.restate.endpointmanifest.v4+json",
        }
    }

    /// The manifest version of a discovery response's `content-type`. Lenient about case,
    /// surrounding whitespace and parameters (`; charset=utf-8`).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        Self::ALL.into_iter().find(|v| v.content_type().eq_ignore_ascii_case(essence))
    }
}

/// The `accept` header of a discovery request: every manifest version, ascending.
pub const DISCOVERY_ACCEPT: &str = "application/vnd.restate.endpointmanifest.v1+json, \
     application/vnd.restate.endpointmanifest.v2+json, \
     application/vnd.restate.endpointmanifest.v3+json, \
     application/vnd.restate.endpointmanifest.v4+json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_accept_lists_manifest_versions_ascending() {
        let joined: Vec<&str> = ManifestVersion::ALL.iter().map(|v| v.content_type()).collect();
        assert_eq!(DISCOVERY_ACCEPT, joined.join(", "));
    }

    #[test]
    fn content_types_round_trip() {
        for v in ServiceProtocolVersion::ALL {
            assert_eq!(ServiceProtocolVersion::from_content_type(v.content_type()), Some(v));
        }
        assert_eq!(
            ServiceProtocolVersion::from_content_type("application/vnd.restate.invocation.v8"),
            None
        );
        assert_eq!(
            ServiceProtocolVersion::from_content_type("application/vnd.restate.invocation.v6 "),
            None
        );
        for v in ManifestVersion::ALL {
            assert_eq!(ManifestVersion::from_content_type(v.content_type()), Some(v));
        }
        assert_eq!(
            ManifestVersion::from_content_type(
                "Application/vnd.restate.endpointmanifest.v3+json; charset=utf-8"
            ),
            Some(ManifestVersion::V3)
        );
        assert_eq!(ManifestVersion::from_content_type("application/json"), None);
    }
}
