//! Leadership on purpose and under failure: planned rotation, the readiness gate
//! (DESIGN invariant 5) and step-down of a leader that cannot produce (invariant 6).

use std::time::{Duration, Instant};

use baton_consensus::{ChangeReason, Readiness};
use baton_primitives::NodeId;
use baton_testing::{RARE_SNAPSHOTS, TestCluster};

const LONG: Duration = Duration::from_secs(30);

/// Asks the current leader to hand leadership to `to`, as an operator would.
async fn transfer_to(cluster: &TestCluster, to: NodeId) {
    let leader = cluster.wait_for_leader(LONG).await;
    if leader != to {
        cluster.nodes[&leader]
            .consensus()
            .hand_over(to, ChangeReason::Transfer)
            .await
            .expect("transfer");
    }
}

/// DESIGN invariant 6: a leader that commits no block for 3 × block time steps
/// down, and the next leader is held to the same rule. Nodes 1 and 2 can never
/// produce (a test-only fault); leadership is pushed onto node 1. The cluster must
/// pass leadership along, on its own, until node 3 leads and blocks resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaders_that_cannot_produce_step_down_until_one_can() {
    let cluster = TestCluster::start_with(3, 300, RARE_SNAPSHOTS, |id, config| {
        config.fault.no_produce = id != 3;
    })
    .await;
    cluster.wait_for_leader(LONG).await;
    transfer_to(&cluster, 1).await;
    let deadline = Instant::now() + LONG;
    while cluster.status(3).leader_id != Some(1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stuck_at = cluster.max_head();

    // No operator action from here on.
    cluster.wait_for_height(stuck_at + 5, LONG).await;
    let leader = cluster.wait_for_leader(LONG).await;
    assert_eq!(leader, 3, "only node 3 can produce");
    let change = cluster
        .status(3)
        .last_leader_change
        .expect("node 3 saw a change");
    assert_eq!(change.reason, ChangeReason::StepDown);
    assert!(
        [1, 2]
            .iter()
            .any(|id| matches!(cluster.status(*id).readiness, Readiness::SteppedDown { .. })),
        "a bad leader sits out a cool-down"
    );
    cluster.assert_identical_chains().await;
    cluster.stop().await;
}

/// DESIGN invariant 6, without failover storms: when no node can produce, each
/// stalled leader steps down once, to a member that has not stepped down itself;
/// the last one, with no healthier member left, holds. The cluster ends with one
/// leader that every node agrees on, and no more changes while it stays stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_every_node_is_degraded_the_cluster_holds_one_leader() {
    let cluster = TestCluster::start_with(3, 300, RARE_SNAPSHOTS, |_, config| {
        config.fault.no_produce = true;
    })
    .await;
    cluster.wait_for_leader(LONG).await;
    let step_downs = |id: NodeId| {
        cluster.nodes[&id]
            .consensus()
            .leader_changes()
            .iter()
            .filter(|change| change.reason == ChangeReason::StepDown)
            .count()
    };
    let deadline = Instant::now() + LONG;
    while (1..=3).map(step_downs).max() < Some(2) {
        assert!(Instant::now() < deadline, "two step-downs never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let holder = cluster.wait_for_leader(LONG).await;

    // Twenty stall bounds (3 block times each) later: still the same leader.
    tokio::time::sleep(Duration::from_secs(18)).await;
    for id in 1..=3 {
        let status = cluster.status(id);
        assert_eq!(
            status.leader_id,
            Some(holder),
            "node {id} sees another leader"
        );
        assert_eq!(step_downs(id), 2, "node {id} saw more step-downs");
    }
    assert!(
        matches!(cluster.status(holder).readiness, Readiness::Ready),
        "the holder does not sit out a cool-down"
    );
    cluster.stop().await;
}

/// DESIGN invariants 2 and 5, a leader elected while far behind: a follower is
/// down for 100 blocks, restarts, and leadership is pushed onto it at once. It
/// may only lead on top of everything committed, so either it catches up first or
/// another node wins; either way the chain goes on with no fork, and the node that
/// was behind ends up holding every block.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_pushed_onto_a_node_far_behind_does_not_wedge_the_chain() {
    let mut cluster = TestCluster::start_with(3, 200, RARE_SNAPSHOTS, |_, _| {}).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let behind = cluster.follower_of(leader);
    cluster.kill(behind).await;
    let down_at = cluster.max_head();
    cluster.wait_for_height(down_at + 100, 2 * LONG).await;

    cluster.restart(behind).await;
    let leader = cluster.wait_for_leader(LONG).await;
    if leader != behind {
        // Refused or not, the cluster must go on: only the outcome is checked.
        let _ = cluster.nodes[&leader]
            .consensus()
            .hand_over(behind, ChangeReason::Transfer)
            .await;
    }
    let head = cluster.max_head();
    cluster.wait_for_height(head + 10, LONG).await;
    cluster.wait_for_leader(LONG).await;
    let verified = cluster.assert_identical_chains().await;
    assert!(verified >= head + 10, "every node holds every block");
    cluster.stop().await;
}

/// DESIGN invariant 5: a `--standby-only` node never stands for election, and
/// when leadership is pushed onto it anyway it hands it on at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_only_node_hands_leadership_on_at_once() {
    let mut cluster = TestCluster::start_with(3, 300, RARE_SNAPSHOTS, |id, config| {
        config.sequencer.standby_only = id == 3;
    })
    .await;
    let leader = cluster.wait_for_leader(LONG).await;
    assert_ne!(leader, 3);
    assert_eq!(cluster.status(3).readiness, Readiness::StandbyOnly);

    // The only other ready node must win the election after the leader dies.
    cluster.kill(leader).await;
    let next = cluster.wait_for_leader(LONG).await;
    assert_ne!(next, 3, "a standby-only node stood for election");
    let height = cluster.max_head();
    cluster.wait_for_height(height + 2, LONG).await;
    cluster.restart(leader).await;

    // Pushed onto the standby, leadership comes straight back to a ready node.
    transfer_to(&cluster, 3).await;
    let height = cluster.max_head();
    cluster.wait_for_height(height + 3, LONG).await;
    let now = cluster.wait_for_leader(LONG).await;
    assert_ne!(now, 3);
    assert!(
        [1, 2, 3].iter().all(|id| cluster.status(*id).healthy),
        "every node applies a moving chain"
    );
    cluster.assert_identical_chains().await;
    cluster.stop().await;
}

/// Planned rotation: after every 2nd sealed block the leader hands over to the
/// next ready member by id, round-robin, and the chain goes on without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_hands_leadership_round_robin() {
    let cluster = TestCluster::start_with(3, 300, RARE_SNAPSHOTS, |_, config| {
        config.sequencer.rotation_blocks = 2;
    })
    .await;
    cluster.wait_for_leader(LONG).await;
    let mut leaders: Vec<NodeId> = Vec::new();
    let deadline = Instant::now() + LONG;
    while leaders.len() < 6 {
        assert!(Instant::now() < deadline, "rotations so far: {leaders:?}");
        let leader = cluster.status(1).leader_id;
        if let Some(leader) = leader
            && leaders.last() != Some(&leader)
        {
            leaders.push(leader);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for pair in leaders.windows(2) {
        assert_eq!(pair[1], pair[0] % 3 + 1, "round-robin by id: {leaders:?}");
    }
    let last = *leaders.last().expect("leaders");
    let change = cluster
        .status(last)
        .last_leader_change
        .expect("the new leader saw the change");
    assert_eq!(change.reason, ChangeReason::Rotation);
    cluster.assert_identical_chains().await;
    cluster.stop().await;
}
