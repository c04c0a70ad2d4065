//! `baton bench tps --stop-follower`: one follower is SIGSTOPped for the whole run
//! (a hang, not a crash: its sockets stay open and it answers nothing), the other
//! two carry the load, then it is resumed and must catch up — by snapshot once the
//! log it needs is purged — and agree on every block.

use std::time::{Duration, Instant};

use baton_primitives::NodeId;
use eyre::{WrapErr, eyre};

use crate::{
    client,
    cluster::{Cluster, check_identical_chains},
    ctl::CATCH_UP_PATIENCE,
};

/// SIGSTOPs a founder that does not lead; returns its id.
pub(crate) async fn follower(cluster: &mut Cluster) -> eyre::Result<NodeId> {
    let leader = cluster.wait_for_leader(Duration::from_secs(60)).await?;
    let id = cluster
        .nodes
        .iter()
        .find(|n| n.founder && n.id != leader)
        .map(|n| n.id)
        .ok_or_else(|| eyre!("no follower to stop: the cluster has one founder"))?;
    cluster.signal(id, libc::SIGSTOP)?;
    println!("node {id} SIGSTOPped for the run (node {leader} leads)");
    Ok(id)
}

/// How the stopped follower came back.
#[derive(Debug)]
pub(crate) struct Resumed {
    pub id: NodeId,
    /// The leader's head when the follower was resumed.
    pub target: u64,
    /// From SIGCONT to the follower's head reaching `target`.
    pub caught_up: Duration,
    pub snapshots_installed: f64,
    /// Blocks every running node holds, identical on all.
    pub identical_through: u64,
}

/// SIGCONTs node `id` and waits until it (and every other node) holds the
/// leader's head as it was then.
pub(crate) async fn resume(cluster: &mut Cluster, id: NodeId) -> eyre::Result<Resumed> {
    let leader = cluster.wait_for_leader(Duration::from_secs(60)).await?;
    let leader_url = cluster.node(leader)?.rpc_url.clone();
    let url = cluster.node(id)?.rpc_url.clone();
    let target = client::node_status(&leader_url, Duration::from_secs(5))
        .await?
        .head_number;
    cluster.signal(id, libc::SIGCONT)?;
    let resumed = Instant::now();
    cluster
        .wait_for_height(target, CATCH_UP_PATIENCE)
        .await
        .wrap_err_with(|| format!("node {id} did not catch up with block {target}"))?;
    let caught_up = resumed.elapsed();
    Ok(Resumed {
        id,
        target,
        caught_up,
        snapshots_installed: client::node_metric(&url, "baton_snapshots_installed_total").await,
        identical_through: check_identical_chains(cluster).await?,
    })
}

pub(crate) fn print(resumed: &Resumed) {
    println!(
        "\nstopped follower {}: resumed, held the leader's block {} after {:.1}s ({} snapshot(s) installed); every node identical through block {}",
        resumed.id,
        resumed.target,
        resumed.caught_up.as_secs_f64(),
        resumed.snapshots_installed,
        resumed.identical_through,
    );
}
