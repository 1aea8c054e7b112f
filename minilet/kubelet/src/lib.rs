//! minilet: minik's kubelet and the glue to its container runtime.
//!
//! The pod start path reads top to bottom: a pod source ([`manifest`]) says what should
//! run → the daemon ([`daemon`]) gives each pod a worker ([`podworker`]) → the worker
//! creates the sandbox ([`sandbox`]: pinned namespaces, CNI through the shared executor)
//! → for each container it resolves the image and prepares the rootfs (the image store
//! crate), writes the OCI bundle ([`bundle`]) and starts a shim ([`shim`]) that runs the
//! OCI runtime, logs in the CRI format ([`logs`]) and records the exit → the worker
//! probes ([`probe`]), restarts per policy with back-off, and writes the status
//! ([`status`]) and events ([`events`]); [`state`] keeps what a restarted minilet adopts.

pub mod apiclient;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod container;
pub mod daemon;
pub mod events;
pub mod logs;
pub mod manifest;
pub mod node;
pub mod podworker;
pub mod probe;
pub mod quantity;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod shim;
pub mod state;
pub mod status;
pub mod timefmt;
