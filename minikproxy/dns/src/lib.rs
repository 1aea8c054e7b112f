//! minik-dns: the cluster DNS server, as CoreDNS's kubernetes plugin.
//!
//! The path of a Service change: the API → [`watch`] (kube-rs watchers on Services and
//! EndpointSlices) → [`objects`] (API objects to zone entries) → [`zone`] (the records;
//! pure, unit-tested) → [`server`] (hickory-server on UDP and TCP; names outside the
//! cluster domain go through [`forward`] to `--upstream`). Around it: [`events`] posts
//! `DNSRecordAdded` on a Service whose records are new, [`register`] makes this server
//! the `kube-system/kube-dns` Service, [`health`] answers `/health` and `/ready`.

pub mod events;
pub mod forward;
pub mod health;
pub mod objects;
pub mod register;
pub mod server;
pub mod watch;
pub mod zone;
