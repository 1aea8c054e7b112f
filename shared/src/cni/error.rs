//! The CNI error object: the JSON a plugin prints on stdout when a verb fails.
//!
//! Codes follow the spec's table (SPEC.md, "Error"): 1–99 are reserved for the spec,
//! 100+ are plugin specific. Every constructor takes the message that tells the user
//! what was wrong; `details` carries the lower-level cause.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The well-known error codes of the CNI spec.
pub mod codes {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// The plugin is not available (cannot service ADD requests).
    pub const NOT_AVAILABLE: u32 = 50;
    /// The plugin is not available, and existing containers may have limited connectivity.
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// First plugin-specific code: a failure of the kernel or an internal step.
    pub const INTERNAL: u32 = 100;
}

/// A CNI error, as printed by a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct CniError {
    /// The version of the error format; filled in by the plugin before printing.
    #[serde(rename = "cniVersion", default, skip_serializing_if = "String::is_empty")]
    pub cni_version: String,
    /// One of [`codes`].
    pub code: u32,
    /// A short message that says what was wrong.
    pub msg: String,
    /// The longer story: the underlying cause.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CNI error {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

impl CniError {
    /// An error with a code and message and no details.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError { cni_version: String::new(), code, msg: msg.into(), details: String::new() }
    }

    /// Adds the lower-level cause.
    pub fn with_details(mut self, details: impl fmt::Display) -> Self {
        self.details = details.to_string();
        self
    }

    /// Code 1.
    pub fn incompatible_version(msg: impl Into<String>) -> Self {
        Self::new(codes::INCOMPATIBLE_VERSION, msg)
    }
    /// Code 2.
    pub fn unsupported_field(msg: impl Into<String>) -> Self {
        Self::new(codes::UNSUPPORTED_FIELD, msg)
    }
    /// Code 3.
    pub fn unknown_container(msg: impl Into<String>) -> Self {
        Self::new(codes::UNKNOWN_CONTAINER, msg)
    }
    /// Code 4.
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_ENV, msg)
    }
    /// Code 5.
    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(codes::IO_FAILURE, msg)
    }
    /// Code 6.
    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(codes::DECODE, msg)
    }
    /// Code 7.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_CONFIG, msg)
    }
    /// Code 11.
    pub fn try_again(msg: impl Into<String>) -> Self {
        Self::new(codes::TRY_AGAIN, msg)
    }
    /// Code 50.
    pub fn not_available(msg: impl Into<String>) -> Self {
        Self::new(codes::NOT_AVAILABLE, msg)
    }
    /// Code 100: a kernel or internal step failed.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL, msg)
    }

    /// Stamps the version of the error format, as a plugin does before printing.
    pub fn for_version(mut self, version: &str) -> Self {
        self.cni_version = version.to_string();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_like_the_spec_example() {
        let e = CniError::invalid_config("bad subnet").with_details("no prefix").for_version("1.1.0");
        let v = serde_json::to_value(&e).ok();
        assert_eq!(
            v,
            Some(serde_json::json!({"cniVersion":"1.1.0","code":7,"msg":"bad subnet","details":"no prefix"}))
        );
    }
}
