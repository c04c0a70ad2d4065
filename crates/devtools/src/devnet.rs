//! `baton devnet`: a whole local cluster as child processes, no Docker.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use alloy_primitives::{U256, utils::format_units};
use baton_consensus::{NodeStatus, Role};
use baton_node::config::NodeArgs;
use baton_primitives::{
    ChainSpec, DevAccount, NodeId,
    genesis::{DEV_ACCOUNTS, DEV_BALANCE, DEV_CHAIN_ID, DEV_GAS_LIMIT, DEV_MNEMONIC},
    mnemonic_accounts,
};
use clap::Args;
use eyre::WrapErr;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cluster::{Cluster, ClusterSpec, log_tail},
    genesis::DevChain,
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
    /// Fund (and unlock: the nodes sign for them) this many accounts of the mnemonic.
    #[arg(long, default_value_t = DEV_ACCOUNTS)]
    pub accounts: u32,
    /// The dev accounts' BIP-39 mnemonic [default: "test test … junk", anvil's].
    #[arg(long)]
    pub mnemonic: Option<String>,
    /// Each dev account's balance, in ETH [default: 10000].
    #[arg(long, conflicts_with = "genesis")]
    pub balance: Option<u64>,
    /// Chain id of the dev chain [default: 7331].
    #[arg(long, conflicts_with = "genesis")]
    pub chain_id: Option<u64>,
    /// Every node hands leadership to the next (round-robin by id) after every N
    /// sealed blocks; 0 = off.
    #[arg(long, default_value_t = 0)]
    pub rotation_blocks: u64,
    /// Start from this geth-style genesis file instead of the dev chain's (the
    /// mnemonic's accounts are still unlocked).
    #[arg(long, conflicts_with = "gas_limit")]
    pub genesis: Option<PathBuf>,
    /// Block gas limit of the dev chain [default: 150M].
    #[arg(long)]
    pub gas_limit: Option<u64>,
    /// Least gap between two preconfirmation frames to one subscriber, in ms
    /// [default: the node's, 50].
    #[arg(long)]
    pub flashblock_interval_ms: Option<u64>,
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
    let mnemonic = args.mnemonic.as_deref().unwrap_or(DEV_MNEMONIC);
    let chain = DevChain {
        chain_id: args.chain_id.unwrap_or(DEV_CHAIN_ID),
        gas_limit: args.gas_limit.unwrap_or(DEV_GAS_LIMIT),
        mnemonic: mnemonic.to_string(),
        accounts: args.accounts,
        balance: match args.balance {
            Some(eth) => U256::from(eth) * U256::from(10u64.pow(18)),
            None => DEV_BALANCE,
        },
        extra: 0,
    };
    // Only the listed accounts: the nodes derive them all to unlock them.
    let listed = mnemonic_accounts(mnemonic, args.accounts.min(LISTED_ACCOUNTS))?;
    let custom = args.gas_limit.is_some() || args.balance.is_some() || args.chain_id.is_some();
    let genesis = match &args.genesis {
        Some(path) => Some(
            path.canonicalize()
                .wrap_err_with(|| format!("cannot read the genesis file {}", path.display()))?,
        ),
        None if custom => {
            std::fs::create_dir_all(&data_dir)?;
            let path = data_dir.join("genesis.json");
            crate::genesis::write_file(&path, &chain)?;
            Some(path)
        }
        None => None,
    };
    let chain_id = match &genesis {
        Some(path) => ChainSpec::from_file(path)?.chain_id,
        None => chain.chain_id,
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
            extra.data.dev_mnemonic = Some(mnemonic.to_string());
            extra.data.dev_unlocked = Some(true);
            extra.sequencer.rotation_blocks = Some(args.rotation_blocks);
            extra.rpc.flashblock_interval_ms = args.flashblock_interval_ms;
            extra.data.genesis = genesis;
            extra
        },
        netns: false,
        joiners: 0,
    })?;
    cluster.start_all()?;
    let ready = async {
        cluster.wait_for_leader(Duration::from_secs(30)).await?;
        cluster.wait_for_height(1, Duration::from_secs(30)).await
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
        "baton devnet: {} sequencer nodes, chain id {chain_id}",
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
    print_accounts(
        &listed,
        args.accounts,
        mnemonic,
        args.genesis.is_none(),
        &chain.balance,
    );
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

/// Most accounts listed at start; the mnemonic derives the rest.
const LISTED_ACCOUNTS: u32 = 20;

/// Lists the first of `total` dev accounts (`listed`).
fn print_accounts(listed: &[DevAccount], total: u32, mnemonic: &str, funded: bool, balance: &U256) {
    let funding = if funded {
        format!(
            "{} ETH each",
            format_units(*balance, "ether")
                .unwrap_or_default()
                .trim_end_matches('0')
                .trim_end_matches('.')
        )
    } else {
        "as the genesis file funds them".to_string()
    };
    println!(
        "Dev accounts ({funding}; unlocked: the nodes sign for them; mnemonic \"{mnemonic}\"):"
    );
    for (i, account) in listed.iter().enumerate() {
        println!("({i}) {}", account.address);
    }
    println!("\nPrivate keys (public knowledge: use them on this devnet only):");
    for (i, account) in listed.iter().enumerate() {
        println!("({i}) {}", account.private_key);
    }
    if total as usize > listed.len() {
        println!(
            "… and {} more, derived from the mnemonic",
            total as usize - listed.len()
        );
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
