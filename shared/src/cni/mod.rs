//! The Container Network Interface: types of the spec (versions, errors, results,
//! configuration, the plugin environment) and the executor that runs plugin chains.
//!
//! Types live here, not in cni-bridge, because both sides of the protocol need them:
//! the plugin (cni-bridge) and the runtime (minilet, the tests, the benchmark).

pub mod conf;
pub mod env;
pub mod error;
pub mod exec;
pub mod result;
pub mod version;

pub use conf::{Attachment, NetConfList};
pub use env::{Command, PluginEnv};
pub use error::{codes, CniError};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::{CniVersion, VersionInfo};
