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
    /// Snapshot bytes the founders sent meanwhile, and the last snapshot's size.
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
    // The leader first, then the other founders: leadership may move meanwhile.
    let founders: Vec<String> = std::iter::once(leader_url.clone())
        .chain(
            cluster
                .nodes
                .iter()
                .filter(|n| n.founder && n.id != leader)
                .map(|n| n.rpc_url.clone()),
        )
        .collect();
    let sent_before = snapshot_bytes_sent(&founders).await;

    cluster.start(id)?;
    let started = Instant::now();
    let mut add = tokio::spawn(on_leader(
        founders.clone(),
        token.to_string(),
        "conductor_addServerAsNonvoter",
        (id, addr.clone(), url.clone()),
    ));
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
            (&mut add).await.wrap_err("the add call's task")??;
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
    on_leader(
        founders.clone(),
        token.to_string(),
        "conductor_addServerAsVoter",
        (id, addr, url),
    )
    .await?;
    let promoted = promoting.elapsed();
    Ok(Joined {
        added,
        caught_up,
        promoted,
        sent_bytes: snapshot_bytes_sent(&founders).await - sent_before,
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

/// Snapshot bytes the nodes at `urls` have sent, together.
async fn snapshot_bytes_sent(urls: &[String]) -> f64 {
    let mut total = 0.0;
    for url in urls {
        total += client::node_metric(url, "baton_snapshot_sent_bytes_total").await;
    }
    total
}

/// Calls admin `method` for member `(id, p2p address, RPC url)` on the leader: on
/// each of `urls` in turn while they answer "not the leader", as an operator
/// follows leadership that moved.
async fn on_leader(
    urls: Vec<String>,
    token: String,
    method: &'static str,
    (id, addr, url): (u64, String, String),
) -> eyre::Result<()> {
    let deadline = Instant::now() + CATCH_UP_PATIENCE;
    for at in urls.iter().cycle() {
        let answer = admin(at, &token, CATCH_UP_PATIENCE)?
            .request::<(), _>(method, rpc_params![id.to_string(), &addr, 0, &url])
            .await;
        match answer {
            Err(jsonrpsee::core::ClientError::Call(e))
                if e.message().starts_with("not the leader") && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other.wrap_err(method),
        }
    }
    Err(eyre!("no node to call {method} on"))
}
