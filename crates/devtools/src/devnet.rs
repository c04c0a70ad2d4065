//! `baton devnet`: a whole local cluster as child processes, no Docker.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use baton_consensus::{NodeStatus, Role};
use baton_node::config::NodeArgs;
use baton_primitives::{
    NodeId, dev_accounts,
    genesis::{DEV_ACCOUNTS, DEV_CHAIN_ID, DEV_MNEMONIC},
};
use clap::Args;
use eyre::WrapErr;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cluster::{Cluster, ClusterSpec, log_tail},
    status::print_table,
};

#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// How many sequencer nodes to run.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Where the nodes keep their data (default: a temporary dir, removed on exit).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Node i serves JSON-RPC on this port + i - 1.
    #[arg(long, default_value_t = 8545)]
    pub rpc_port: u16,
    /// Node i listens for members on this port + i - 1.
    #[arg(long, default_value_t = 30301)]
    pub p2p_port: u16,
    #[arg(long, default_value_t = 1000)]
    pub block_time_ms: u64,
    /// Fund this many accounts of the dev mnemonic with 10,000 ETH each.
    #[arg(long, default_value_t = DEV_ACCOUNTS)]
    pub accounts: u32,
    /// Every node hands leadership to the next (round-robin by id) after every N
    /// sealed blocks; 0 = off.
    #[arg(long, default_value_t = 0)]
    pub rotation_blocks: u64,
    /// Start from this geth-style genesis file instead of the dev chain's.
    #[arg(long, conflicts_with = "gas_limit")]
    pub genesis: Option<PathBuf>,
    /// Block gas limit of the dev chain [default: 150M].
    #[arg(long)]
    pub gas_limit: Option<u64>,
}

pub async fn run(args: DevnetArgs) -> eyre::Result<()> {
    let temp = match &args.data_dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("baton-devnet-").tempdir()?),
    };
    let data_dir = match (&args.data_dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path().to_path_buf(),
        (None, None) => unreachable!("a temp dir is made when no data dir is given"),
    };
    let genesis = match (&args.genesis, args.gas_limit) {
        (Some(path), _) => Some(
            path.canonicalize()
                .wrap_err_with(|| format!("cannot read the genesis file {}", path.display()))?,
        ),
        (None, Some(gas_limit)) => {
            std::fs::create_dir_all(&data_dir)?;
            let path = data_dir.join("genesis.json");
            crate::genesis::write_file(&path, gas_limit, args.accounts, 0)?;
            Some(path)
        }
        (None, None) => None,
    };
    let mut cluster = Cluster::create(&ClusterSpec {
        binary: std::env::current_exe()?,
        nodes: args.nodes,
        data_dir: data_dir.clone(),
        rpc_port: args.rpc_port,
        p2p_port: args.p2p_port,
        block_time_ms: args.block_time_ms,
        extra: {
            let mut extra = NodeArgs::default();
            extra.data.dev_accounts = Some(args.accounts);
            extra.sequencer.rotation_blocks = Some(args.rotation_blocks);
            extra.data.genesis = genesis;
            extra
        },
    })?;
    cluster.start_all()?;
    let ready = async {
        cluster.wait_for_leader(Duration::from_secs(30)).await?;
        cluster.wait_for_height(0, Duration::from_secs(30)).await
    };
    if let Err(e) = ready.await {
        for node in &cluster.nodes {
            eprintln!(
                "--- node {} ({}):\n{}",
                node.id,
                node.log_path.display(),
                log_tail(&node.log_path, 15)
            );
        }
        return Err(e);
    }

    println!(
        "baton devnet: {} sequencer nodes, chain id {DEV_CHAIN_ID}",
        args.nodes
    );
    println!(
        "data dir: {}{}\n",
        data_dir.display(),
        if temp.is_some() {
            " (removed on exit)"
        } else {
            ""
        }
    );
    print_accounts(args.accounts);
    let statuses = cluster.statuses().await;
    print_table(&statuses_with_urls(&cluster, &statuses));
    println!(
        "\nLogs: <data dir>/node<i>/node.log. Kill the leader's process (kill -9 PID) to watch failover."
    );
    println!("Ctrl-C stops every node.\n");

    let mut last_leader = leader_of(&statuses);
    if let Some((id, status)) = &last_leader {
        println!(
            "leader: node {id} (term {}), head {}",
            status.term, status.head_number
        );
    }
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = tick.tick() => {}
        }
        for (id, status) in cluster.reap() {
            println!("node {id} exited ({status})");
        }
        let statuses = cluster.statuses().await;
        let leader = leader_of(&statuses);
        if leader.as_ref().map(|(id, s)| (*id, s.term))
            != last_leader.as_ref().map(|(id, s)| (*id, s.term))
        {
            match &leader {
                Some((id, status)) => {
                    println!(
                        "leader: node {id} (term {}), head {}",
                        status.term, status.head_number
                    )
                }
                None => println!("no leader (election in progress)"),
            }
            last_leader = leader;
        }
    }
    println!("stopping {} nodes…", cluster.nodes.len());
    cluster.stop_all(Duration::from_secs(5));
    Ok(())
}

fn print_accounts(count: u32) {
    let accounts = dev_accounts(count);
    println!("Dev accounts (10,000 ETH each; mnemonic \"{DEV_MNEMONIC}\"):");
    for (i, account) in accounts.iter().enumerate() {
        println!("({i}) {}", account.address);
    }
    println!("\nPrivate keys (public knowledge: use them on this devnet only):");
    for (i, account) in accounts.iter().enumerate() {
        println!("({i}) {}", account.private_key);
    }
    println!();
}

fn leader_of(statuses: &[(NodeId, Option<NodeStatus>)]) -> Option<(NodeId, NodeStatus)> {
    statuses.iter().find_map(|(id, s)| {
        s.clone()
            .filter(|s| s.role == Role::Leader)
            .map(|s| (*id, s))
    })
}

fn statuses_with_urls(
    cluster: &Cluster,
    statuses: &[(NodeId, Option<NodeStatus>)],
) -> BTreeMap<NodeId, (String, Option<u32>, Option<NodeStatus>)> {
    statuses
        .iter()
        .filter_map(|(id, status)| {
            let node = cluster.node(*id).ok()?;
            Some((*id, (node.rpc_url.clone(), node.pid(), status.clone())))
        })
        .collect()
}
