//! minik's benchmarks, each part measured next to its reference in the same run.
//!
//! The CNI benchmark (`bench-cni`) times N sequential ADDs and then N DELs of cni-bridge
//! and of the reference `bridge` + `host-local`: plain, with masquerade (an extra), and as
//! a masquerade + portmap chain, inside the sandbox. Its parts:
//! - [`stats`]: samples, median and p90;
//! - [`variants`]: the four variants and how one is set up, run, timed and checked;
//! - [`report`]: the side-by-side table, and the extremes and trend of each variant.
//!
//! Fairness is the point: both implementations run on the same machine in the same run,
//! on identically built namespaces, with the same config keys and CNI version, and are
//! spawned the same way (see [`variants`]).

pub mod report;
pub mod stats;
pub mod variants;
