//! cni-bridge: minik's CNI plugin, as a library so its pieces can be tested on their own.
//!
//! One ADD reads top to bottom in [`cmd::add`]: load and validate the config → ensure the
//! bridge → allocate IPs → create the veth pair with its container side in the netns →
//! addresses and routes in the container → masquerade → node routes → print the result.
//!
//! - [`config`]: stdin, validated field by field;
//! - [`ipam`]: the built-in, host-local compatible IP allocator;
//! - [`links`]: the bridge and the veth pairs;
//! - [`masq`]: masquerade in nftables;
//! - [`cmd`]: the verbs.

pub mod cmd;
pub mod config;
pub mod hash;
pub mod ipam;
pub mod links;
pub mod masq;
