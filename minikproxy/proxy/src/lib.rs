//! minikproxy: the node's Service proxy. It watches Services, EndpointSlices and Nodes
//! through the Kubernetes API and programs Service forwarding as nftables rules in one
//! table of its own, in the shape of kube-proxy's nftables mode.
//!
//! The pure part (no I/O, unit-tested):
//! - [`model`]: a Service and its endpoints as the rules need them;
//! - [`convert`]: from the API's Service and EndpointSlice objects to the model;
//! - [`expr`]: nftables JSON expression builders;
//! - [`table`]: the base chains and verdict maps of the table;
//! - [`rules`]: one Service's chains, affinity sets and map elements;
//! - [`batch`]: the incremental batch for one Service, and the in-place full resync.
//!
//! The node side:
//! - [`nftables`]: applying batches, reading the table back, noticing drift;
//! - [`conntrack`]: flushing UDP flows of removed endpoints;
//! - [`lbaddr`]: announcing load-balancer IPs on the underlay interface;
//! - [`cache`]: the watched objects, and which Services they touch;
//! - [`proxier`]: the sync loop (debounce, coalesce, incremental or full sync);
//! - [`events`]: `RulesProgrammed` Events on Services, rate-limited;
//! - [`metrics`] and [`http`]: `/metrics` and `/healthz`.

pub mod batch;
pub mod cache;
pub mod conntrack;
pub mod convert;
pub mod events;
pub mod expr;
pub mod http;
pub mod lbaddr;
pub mod metrics;
pub mod model;
pub mod nftables;
pub mod proxier;
pub mod rules;
pub mod table;
