//! miniapi: minik's Kubernetes-compatible API server.
//!
//! Layering (outside in), in the spirit of Firecracker's `api_server`:
//!
//! * [`http`] — TLS, bearer-token auth, routing and content negotiation. It parses
//!   every request into a typed [`registry::ApiRequest`] and never touches storage.
//! * [`registry`] — per-resource strategies (defaulting, validation, status
//!   subresources, allocation) that turn requests into store operations.
//! * [`store`] — the [`store::Store`] trait, its redb backend and the watch hub.
//!
//! Supporting modules: [`patch`] (JSON, merge, strategic-merge and apply patches),
//! [`selectors`], [`allocators`], [`status`] (Kubernetes `Status` errors),
//! [`discovery`], [`openapi`], [`table`] (server-side printing) and [`kubeconfig`];
//! [`proxy`] forwards the pod streaming subresources (log, exec, attach, portforward) to kubelets.

pub mod allocators;
pub mod config;
pub mod discovery;
pub mod http;
pub mod kubeconfig;
pub mod openapi;
pub mod patch;
pub mod proto;
pub mod proxy;
pub mod registry;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod timeutil;

pub use config::{ServerConfig, StoreBackend};
pub use server::{run, Server, ServerError};
pub use status::ApiError;
