//! Adding a member to a running local cluster as an operator does, measured:
//! the node waiting to join is started and added, catches up — by a chunked
//! snapshot of the whole chain once the log it would need is purged — and is
//! promoted to voter (`baton bench tps --add-member`, and the process tests).
//! Optionally it is SIGKILLed as the first snapshot bytes reach it and restarted:
//! the transfer must resume or start over, and its data dir must still open.

use std::time::{Duration, Instant};

use eyre::{WrapErr, eyre};
use jsonrpsee::{core::client::ClientT, rpc_params};

use crate::{
    client,
    cluster::{Cluster, check_identical_chains},
    ctl::{CATCH_UP_PATIENCE, admin},
};

/// How a member was added.
#[derive(Debug)]
pub struct Joined {
    /// From starting the node to `conductor_addServerAsNonvoter` returning (the
    /// membership entry is replicated to it; the snapshot may still be on its way).
    pub added: Duration,
    /// From starting the node to its head reaching the leader's head as it was
    /// when the add returned.
    pub caught_up: Duration,
    /// `conductor_addServerAsVoter`.
    pub promoted: Duration,
    /// Snapshot bytes the leader sent meanwhile, and the last snapshot's size.
    pub sent_bytes: f64,
    pub snapshot_bytes: Option<f64>,
    /// Times the new member was SIGKILLed mid-transfer and restarted.
    pub crashes: u32,
    /// Blocks the new member holds, every one identical to the others'.
    pub identical_through: u64,
}

/// Adds the cluster's joiner (its first node that did not found it) as above.
pub async fn add_member(cluster: &mut Cluster, token: &str, crash: bool) -> eyre::Result<Joined> {
    let joiner = cluster
        .nodes
        .iter()
        .find(|n| !n.founder)
        .ok_or_else(|| eyre!("the cluster has no node waiting to join"))?;
    let (id, addr, url) = (joiner.id, joiner.p2p_addr.clone(), joiner.rpc_url.clone());
    let leader = cluster.wait_for_leader(Duration::from_secs(60)).await?;
    let leader_url = cluster.node(leader)?.rpc_url.clone();
    let sent_before = client::node_metric(&leader_url, "baton_snapshot_sent_bytes_total").await;

    cluster.start(id)?;
    let started = Instant::now();
    let to_leader = admin(&leader_url, token, CATCH_UP_PATIENCE)?;
    let mut add = {
        let (to_leader, addr, url) = (to_leader.clone(), addr.clone(), url.clone());
        tokio::spawn(async move {
            to_leader
                .request::<(), _>(
                    "conductor_addServerAsNonvoter",
                    rpc_params![id.to_string(), addr, 0, url],
                )
                .await
        })
    };
    // Until it holds the leader's head: the add call, and the crash if asked for
    // (once snapshot bytes reach it, before it holds any block).
    let mut crashes = 0;
    // When the add call returned, and the leader's head then.
    let mut added: Option<(Duration, u64)> = None;
    let (added, caught_up) = loop {
        let head = client::node_status(&url, Duration::from_secs(2))
            .await
            .map_or(0, |s| s.head_number);
        if let Some((at, target)) = added
            && head >= target
        {
            break (at, started.elapsed());
        }
        if crash
            && crashes == 0
            && head == 0
            && client::node_metric(&url, "baton_snapshot_received_bytes_total").await > 0.0
        {
            cluster.kill(id)?;
            cluster.start(id)?;
            crashes += 1;
        }
        if added.is_none() && add.is_finished() {
            (&mut add)
                .await
                .wrap_err("the add call's task")?
                .wrap_err("conductor_addServerAsNonvoter")?;
            let at = started.elapsed();
            let target = client::node_status(&leader_url, Duration::from_secs(5))
                .await?
                .head_number;
            added = Some((at, target));
            continue;
        }
        if started.elapsed() > CATCH_UP_PATIENCE {
            return Err(eyre!(
                "node {id} stayed at block {head} for {CATCH_UP_PATIENCE:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    let promoting = Instant::now();
    to_leader
        .request::<(), _>(
            "conductor_addServerAsVoter",
            rpc_params![id.to_string(), addr, 0, url],
        )
        .await
        .wrap_err("conductor_addServerAsVoter")?;
    let promoted = promoting.elapsed();
    Ok(Joined {
        added,
        caught_up,
        promoted,
        sent_bytes: client::node_metric(&leader_url, "baton_snapshot_sent_bytes_total").await
            - sent_before,
        snapshot_bytes: client::metrics(&leader_url, Duration::from_secs(5))
            .await
            .ok()
            .and_then(|page| client::metric(&page, "baton_snapshot_bytes")),
        crashes,
        identical_through: check_identical_chains(cluster).await?,
    })
}

pub fn print(joined: &Joined) {
    let mib = |bytes: f64| bytes / f64::from(1u32 << 20);
    println!(
        "\nnew member: added (conductor_addServerAsNonvoter returned) after {:.2}s, \
         caught up with the leader's head after {:.1}s, promoted in {:.2}s",
        joined.added.as_secs_f64(),
        joined.caught_up.as_secs_f64(),
        joined.promoted.as_secs_f64(),
    );
    println!(
        "snapshot bytes sent meanwhile: {:.1} MiB (the leader's last snapshot: {}){}",
        mib(joined.sent_bytes),
        joined
            .snapshot_bytes
            .map_or("unknown".to_string(), |b| format!("{:.1} MiB", mib(b))),
        if joined.crashes > 0 {
            format!(
                "; SIGKILLed and restarted {} time(s) mid-transfer",
                joined.crashes
            )
        } else {
            String::new()
        }
    );
    println!(
        "every member identical through block {}",
        joined.identical_through
    );
}
