//! minik's OCI runtime: a library and a runc-compatible command line (`minik-oci`).
//!
//! It follows the OCI runtime spec: a bundle's `config.json` (read with `oci-spec`)
//! becomes a container whose init process is forked into the namespaces the config
//! lists, gets its rootfs (mounts, devices, `pivot_root`, masked and read-only paths),
//! its cgroup (through `minik-cgroups`), rlimits, `no_new_privs`, capabilities and
//! seccomp filter, and waits on `<root>/<id>/exec.fifo` until `start` — as runc does.
//!
//! The library API is [`Runtime`]: [`Runtime::create`], [`Runtime::start`],
//! [`Runtime::state`], [`Runtime::kill`], [`Runtime::delete`], [`Runtime::exec`],
//! [`Runtime::ps`], [`Runtime::list`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod capabilities;
pub mod cgroups;
pub mod config;
pub mod container;
pub mod error;
pub mod features;
pub mod hooks;
pub mod namespaces;
pub mod process;
pub mod procfs;
pub mod rlimits;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod syscall;

pub use container::{
    Container, CreateOptions, ExecOptions, ExecResult, OciState, Runtime, Status, DEFAULT_ROOT,
};
pub use error::{Error, Result};
pub use oci_spec::runtime::{Process, Spec};
