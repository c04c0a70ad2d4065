//! The `baton` command line: `node`, `devnet`, `status`, `key`, `bench`, `chaos`.

use std::{net::SocketAddr, path::PathBuf};

use alloy_primitives::Address;
use baton_primitives::NodeId;
use clap::{Args, Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    bench::FailoverArgs,
    config::{ConfigFile, MemberEntry},
    devnet::DevnetArgs,
    launch::launch,
    status::StatusArgs,
};

#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about = "A highly available L2 sequencer: Raft-replicated blocks, automatic failover"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one cluster member.
    Node(Box<NodeArgs>),
    /// Run a whole local cluster as child processes (no Docker).
    Devnet(DevnetArgs),
    /// Show the cluster as a table, asking any one member.
    Status(StatusArgs),
    /// Print this node's peer id, creating its key in the data dir if needed.
    Key(KeyArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Inject seeded faults into a local cluster under load, then check the history.
    Chaos(crate::chaos::ChaosArgs),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Kill the leader of a local cluster again and again; report the gap to the next block.
    Failover(FailoverArgs),
    /// Send pre-signed transfers at a fixed concurrency; report throughput and latency.
    Tps(crate::bench_tps::TpsArgs),
    /// Rotate leadership every N blocks; report the hand-over's block interval.
    Rotation(crate::bench::RotationArgs),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct KeyArgs {
    /// The key is `node.key` in this data dir.
    #[arg(long, env = "BATON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The key file itself.
    #[arg(long, env = "BATON_NODE_KEY")]
    pub node_key: Option<PathBuf>,
}

/// `baton node` flags; each overrides the same setting in `--config`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// TOML config file.
    #[arg(long, env = "BATON_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's member id.
    #[arg(long, env = "BATON_ID")]
    pub id: Option<NodeId>,
    #[arg(long, env = "BATON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The node's libp2p key file (default: node.key in the data dir).
    #[arg(long, env = "BATON_NODE_KEY")]
    pub node_key: Option<PathBuf>,
    /// geth-style genesis.json (default: the built-in dev genesis).
    #[arg(long, env = "BATON_GENESIS")]
    pub genesis: Option<PathBuf>,
    /// JSON-RPC listen address (HTTP and WebSocket).
    #[arg(long, env = "BATON_RPC_ADDR")]
    pub rpc_addr: Option<SocketAddr>,
    /// libp2p listen multiaddr, e.g. /ip4/0.0.0.0/tcp/30301.
    #[arg(long, env = "BATON_P2P_ADDR")]
    pub p2p_addr: Option<String>,
    #[arg(long)]
    pub block_time_ms: Option<u64>,
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    #[arg(long)]
    pub election_timeout_min_ms: Option<u64>,
    #[arg(long)]
    pub election_timeout_max_ms: Option<u64>,
    /// Snapshot (and purge the log) every this many applied entries.
    #[arg(long)]
    pub snapshot_every: Option<u64>,
    /// Fee recipient of the blocks this node seals.
    #[arg(long)]
    pub coinbase: Option<Address>,
    /// With the built-in dev genesis: fund this many accounts of the dev mnemonic.
    #[arg(long)]
    pub dev_accounts: Option<u32>,
    /// Serve baton_faultPartition, which cuts this node's Raft links on request
    /// (tests and `baton chaos` only).
    #[arg(long, hide = true)]
    pub fault_injection: bool,
    /// Never stand for election: follow, serve RPC, and hand leadership on at once
    /// if it arrives anyway.
    #[arg(long)]
    pub standby_only: bool,
    /// Hand leadership to the next ready member (round-robin by id) after every N
    /// sealed blocks; 0 turns rotation off.
    #[arg(long)]
    pub rotation_blocks: Option<u64>,
    /// Lead without ever producing a block (tests of step-down only).
    #[arg(long, hide = true)]
    pub fault_no_produce: bool,
    /// File holding the bearer token that conductor_ methods which change anything
    /// require (they are refused without it).
    #[arg(long, env = "BATON_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Join a running cluster: do not found one; wait for the leader to add this
    /// node (conductor_addServerAsNonvoter).
    #[arg(long)]
    pub join: bool,
    /// A member: id=N,peer=PEER_ID,p2p=MULTIADDR,rpc=URL (repeat for each; replaces the file's list).
    #[arg(long = "member")]
    pub members: Vec<MemberEntry>,
}

impl NodeArgs {
    fn into_config(self) -> eyre::Result<crate::config::NodeConfig> {
        let file = match &self.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        let flags = ConfigFile {
            id: self.id,
            data_dir: self.data_dir,
            node_key: self.node_key,
            genesis: self.genesis,
            rpc_addr: self.rpc_addr,
            p2p_addr: self.p2p_addr,
            block_time_ms: self.block_time_ms,
            heartbeat_ms: self.heartbeat_ms,
            election_timeout_min_ms: self.election_timeout_min_ms,
            election_timeout_max_ms: self.election_timeout_max_ms,
            snapshot_every: self.snapshot_every,
            coinbase: self.coinbase,
            dev_accounts: self.dev_accounts,
            fault_injection: self.fault_injection.then_some(true),
            standby_only: self.standby_only.then_some(true),
            rotation_blocks: self.rotation_blocks,
            fault_no_produce: self.fault_no_produce.then_some(true),
            admin_token_file: self.admin_token_file,
            join: self.join.then_some(true),
            members: self.members,
        };
        Ok(file.overridden_by(flags).resolve()?)
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> eyre::Result<()> {
    match cli.command {
        Command::Node(args) => run_node(*args).await,
        Command::Devnet(args) => crate::devnet::run(args).await,
        Command::Status(args) => crate::status::run(args).await,
        Command::Key(args) => {
            let path = args
                .node_key
                .or_else(|| args.data_dir.map(|dir| dir.join("node.key")))
                .ok_or_else(|| eyre::eyre!("give --node-key or --data-dir"))?;
            let key = baton_p2p::load_or_create_key(&path)?;
            println!("{}", key.public().to_peer_id());
            Ok(())
        }
        Command::Bench(BenchCommand::Failover(args)) => crate::bench::failover(args).await,
        Command::Bench(BenchCommand::Tps(args)) => crate::bench_tps::tps(args).await,
        Command::Bench(BenchCommand::Rotation(args)) => crate::bench::rotation(args).await,
        Command::Chaos(args) => crate::chaos::run(args).await,
    }
}

async fn run_node(args: NodeArgs) -> eyre::Result<()> {
    let config = args.into_config()?;
    let node = launch(config, None).await?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        _ = node.stopped() => {}
    }
    tracing::info!("stopping");
    node.stop().await;
    Ok(())
}
