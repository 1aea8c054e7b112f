//! minik's shared crate: what more than one part of minik needs.
//!
//! - [`apiclient`] (feature `apiclient`): a Kubernetes API client from a kubeconfig.
//! - [`cni`]: the CNI spec's types and the executor that runs plugin chains (used by
//!   cni-bridge as a plugin, by minilet as a runtime, and by the tests and benchmarks).
//! - [`netns`]: entering and holding network namespaces.
//! - [`netlink`]: rtnetlink connections bound to a namespace, and link/address/route helpers.
//! - [`node_routes`]: reconciling the routes to other nodes' pod CIDRs.
//! - [`nft`]: applying nftables batches through the `nft` JSON API.
//! - [`streams`]: the exec/attach/port-forward stream protocols (WebSocket channels, SPDY).
//!
//! Dependencies point one way: every part depends on this crate, never on another part.

#[cfg(feature = "apiclient")]
pub mod apiclient;
pub mod cni;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod node_routes;
pub mod streams;
