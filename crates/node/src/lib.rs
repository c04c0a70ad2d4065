//! baton-node: what runs in production: the configuration, the one wiring
//! function, the peers a node follows, and the supervision of its tasks.
//!
//! - [`config`]: one struct per concern (cluster, data, timing, RPC, sequencer,
//!   faults), from TOML and flags, checked as a whole into [`config::NodeConfig`].
//! - [`launch`]: [`launch::launch`], the wiring function that the binary and the
//!   tests both call; it returns a running [`launch::Node`].
//! - [`peers`]: the members' readiness (where leadership goes) and the p2p
//!   allowlist that follows the Raft membership.
//! - [`supervisor`]: critical tasks and fail-stop.
//! - `metrics`: the Prometheus recorder behind `GET /metrics`.
//! - [`disk`]: fail-stop when the database's disk runs out of space.

pub mod config;
pub mod disk;
pub mod launch;
mod metrics;
mod peers;
pub mod supervisor;
