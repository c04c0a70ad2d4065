//! baton-devtools: what developers and CI run against a cluster, never shipped in
//! a node: local clusters of `baton node` processes, the devnet, benchmarks, and
//! the chaos harness with its history checker.
//!
//! - [`cluster`]: a local cluster of child processes ([`cluster::Cluster`]), on
//!   127.0.0.1 or each node in a network namespace of its own ([`netns`]).
//! - [`devnet`], [`status`], [`ctl`]: `baton devnet`, `baton status` and the operator's
//!   `baton ctl`; [`join`]: adding a member to a local cluster, measured.
//! - [`bench`], [`tps`]: failover, rotation and throughput benchmarks; [`exec`]: the
//!   execution path's upper bound, on one node without Raft; [`genesis`]: genesis
//!   files with more state.
//! - [`chaos`]: seeded faults and storage torture, then the history check.
//! - [`client`]: the small JSON-RPC client these tools share.

pub mod bench;
pub mod chaos;
pub mod client;
pub mod cluster;
pub mod ctl;
pub mod devnet;
pub mod exec;
pub mod genesis;
pub mod join;
pub mod netns;
pub mod status;
pub mod tps;
