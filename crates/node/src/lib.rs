//! baton-node: the `baton` binary's library: configuration, wiring, and the
//! command-line tools around a node.
//!
//! - [`config`]: TOML + flags, validated together ([`config::NodeConfig`]).
//! - [`launch`]: the one wiring function, [`launch::launch`], that `main` and the
//!   tests both call.
//! - [`cluster`]: a local cluster of `baton node` processes, used by `devnet`,
//!   `bench` and the process-level tests.
//! - [`cli`], [`devnet`], [`status`], [`bench`], [`chaos`]: the subcommands.

pub mod bench;
pub mod bench_tps;
pub mod chaos;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod devnet;
pub mod launch;
pub mod peers;
pub mod status;
