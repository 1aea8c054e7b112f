//! `minik shell` on VM nodes: the agent protocol and its host-side client (the guest
//! side is the `minik-agent` binary in the node image).

pub mod client;
#[allow(dead_code)] // encode() is the guest's half
pub mod proto;
