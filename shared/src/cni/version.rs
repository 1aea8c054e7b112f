//! CNI specification versions: which ones minik speaks, and what each allows.
//!
//! A plugin is asked for a result "of the config's `cniVersion`"; older versions lack
//! CHECK (before 0.4.0) and GC/STATUS (before 1.1.0). Keeping that table in one place
//! lets the plugin and the executor agree on it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::CniError;

/// A CNI spec version that minik understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    /// 0.3.0
    V0_3_0,
    /// 0.3.1
    V0_3_1,
    /// 0.4.0: adds CHECK and prevResult on DEL.
    V0_4_0,
    /// 1.0.0: drops the per-IP `version` field.
    V1_0_0,
    /// 1.1.0: adds GC, STATUS and `cniVersions` in conflists.
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first (what VERSION reports).
    pub const ALL: [CniVersion; 5] = [
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];

    /// The newest version minik speaks.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// The dotted form used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Whether the CHECK verb exists in this version.
    pub fn has_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    /// Whether the GC and STATUS verbs exist in this version.
    pub fn has_gc_and_status(self) -> bool {
        self >= CniVersion::V1_1_0
    }

    /// Whether IP configs carry the `version: "4"|"6"` field (results before 1.0.0).
    pub fn ips_carry_version(self) -> bool {
        self < CniVersion::V1_0_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CniVersion {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CniVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                let supported: Vec<&str> = CniVersion::ALL.iter().map(|v| v.as_str()).collect();
                CniError::incompatible_version(format!(
                    "cniVersion {s:?} is not supported; supported versions are {}",
                    supported.join(", ")
                ))
            })
    }
}

impl Serialize for CniVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: CniError| serde::de::Error::custom(e.msg))
    }
}

/// The VERSION verb's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionInfo {
    /// The version of this answer's own format.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Every version the plugin can produce results for.
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    /// What minik's plugins support.
    pub fn minik() -> Self {
        VersionInfo {
            cni_version: CniVersion::LATEST.as_str().to_string(),
            supported_versions: CniVersion::ALL.iter().map(|v| v.as_str().to_string()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_version_and_rejects_others() {
        for v in CniVersion::ALL {
            assert_eq!(v.as_str().parse::<CniVersion>().ok(), Some(v));
        }
        let err = "0.2.0".parse::<CniVersion>().err().map(|e| e.code);
        assert_eq!(err, Some(super::super::error::codes::INCOMPATIBLE_VERSION));
    }

    #[test]
    fn verbs_follow_the_spec_table() {
        assert!(!CniVersion::V0_3_1.has_check());
        assert!(CniVersion::V0_4_0.has_check());
        assert!(!CniVersion::V1_0_0.has_gc_and_status());
        assert!(CniVersion::V1_1_0.has_gc_and_status());
        assert!(CniVersion::V0_4_0.ips_carry_version());
        assert!(!CniVersion::V1_0_0.ips_carry_version());
    }
}
