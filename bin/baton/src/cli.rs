//! The `baton` command line: `node` runs a member (baton-node); `devnet`, `status`,
//! `ctl`, `bench` and `chaos` are the developer and operator tools
//! (baton-devtools); `key` prints a node's peer id.

use std::path::PathBuf;

use baton_devtools::{bench, chaos, ctl, devnet, exec, status, tps};
use baton_node::{config::NodeArgs, launch::launch};
use clap::{Args, Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about = "A highly available L2 sequencer: Raft-replicated blocks, automatic failover"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one cluster member.
    Node(Box<NodeCommand>),
    /// Run a whole local cluster as child processes (no Docker).
    Devnet(devnet::DevnetArgs),
    /// Show the cluster as a table, asking any one member.
    Status(status::StatusArgs),
    /// Operator commands over the admin API: status, transfer-leader, pause, resume,
    /// add-member, promote, remove-member.
    Ctl(ctl::CtlArgs),
    /// Print this node's peer id, creating its key in the data dir if needed.
    Key(KeyArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Inject seeded faults into a local cluster under load, then check the history.
    Chaos(chaos::ChaosArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Kill the leader of a local cluster again and again; report the gap to the next block.
    Failover(bench::FailoverArgs),
    /// Send pre-signed transfers at a fixed concurrency; report throughput and latency.
    Tps(tps::TpsArgs),
    /// Rotate leadership every N blocks; report the hand-over's block interval.
    Rotation(bench::RotationArgs),
    /// Execute, seal and write pre-signed transfers on one node without Raft; report
    /// the execution path's upper bound.
    Exec(exec::ExecArgs),
}

/// `baton node`: a config file and/or flags; each flag overrides the same setting
/// in the file.
#[derive(Debug, Args)]
struct NodeCommand {
    /// TOML config file.
    #[arg(long, env = "BATON_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    args: NodeArgs,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct KeyArgs {
    /// The key is `node.key` in this data dir.
    #[arg(long, env = "BATON_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The key file itself.
    #[arg(long, env = "BATON_NODE_KEY")]
    node_key: Option<PathBuf>,
}

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> eyre::Result<()> {
    match cli.command {
        Command::Node(command) => run_node(*command).await,
        Command::Devnet(args) => devnet::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Ctl(args) => ctl::run(args).await,
        Command::Key(args) => {
            let path = args
                .node_key
                .or_else(|| args.data_dir.map(|dir| dir.join("node.key")))
                .ok_or_else(|| eyre::eyre!("give --node-key or --data-dir"))?;
            let key = baton_p2p::load_or_create_key(&path)?;
            println!("{}", key.public().to_peer_id());
            Ok(())
        }
        Command::Bench(BenchCommand::Failover(args)) => bench::failover(args).await,
        Command::Bench(BenchCommand::Tps(args)) => tps::tps(args).await,
        Command::Bench(BenchCommand::Rotation(args)) => bench::rotation(args).await,
        Command::Bench(BenchCommand::Exec(args)) => {
            tokio::task::spawn_blocking(|| exec::exec(args)).await?
        }
        Command::Chaos(args) => chaos::run(args).await,
    }
}

/// Runs one member until a signal stops it, or until a critical task fails
/// (fail-stop: the process then exits non-zero).
async fn run_node(command: NodeCommand) -> eyre::Result<()> {
    let file = match &command.config {
        Some(path) => NodeArgs::load(path)?,
        None => NodeArgs::default(),
    };
    let config = file.overridden_by(command.args)?.resolve()?;
    let mut node = launch(config, None).await?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let failure = tokio::select! {
        _ = interrupt.recv() => None,
        _ = terminate.recv() => None,
        failure = node.failed() => Some(failure),
    };
    match failure {
        None => {
            tracing::info!("stopping");
            node.stop().await;
            Ok(())
        }
        Some(failure) => {
            node.fail_stop(&failure).await;
            Err(eyre::eyre!("{failure}"))
        }
    }
}
