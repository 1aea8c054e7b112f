//! minik's benchmarks, each part measured next to its reference in the same run.
//!
//! The CNI benchmark (`bench-cni`) times N sequential ADDs and then N DELs of cni-bridge
//! and of the reference `bridge` + `host-local`: plain, with masquerade (an extra), and as
//! a masquerade + portmap chain, inside the sandbox. Its parts:
//! - [`stats`]: samples, median and p90;
//! - [`variants`]: the four variants and how one is set up, run, timed and checked;
//! - [`report`]: the side-by-side table, and the extremes and trend of each variant.
//!
//! The minilet benchmark (`bench-minilet`) times `/bin/true` in a fresh container with
//! minik-oci, crun and runc on the same bundle, and 30 pods started at once on one
//! minilet node (to Ready, with minilet's memory), under each cgroup layout:
//! - [`runtimes`]: the bundle, the runtimes and how a container's lifecycle is timed;
//! - [`pods`]: the node, the pods, where their start time goes, and the memory;
//! - [`cgroups`]: the hybrid layout, the private unmount crun needs, cgroup cleanup;
//! - [`procs`]: processes and their memory from /proc;
//! - [`minilet_report`]: its tables and targets.
//!
//! The Service proxy benchmark (`bench-proxy`) times one Service change with 1 000 and
//! 10 000 Services programmed: minikproxy's incremental nft batch against a full rewrite
//! of the same rule set ([`proxy`]).
//!
//! Fairness is the point: both implementations run on the same machine in the same run,
//! on identically built namespaces, with the same config keys and CNI version, and are
//! spawned the same way (see [`variants`]).

pub mod cgroups;
pub mod datapath;
pub mod minilet_report;
pub mod pods;
pub mod procs;
pub mod proxy;
pub mod report;
pub mod runtimes;
pub mod stats;
pub mod variants;
