//! Real `baton` processes (DESIGN §8, layer 4): SIGKILL the leader, restart it,
//! and check the chains; a node whose critical task dies exits non-zero; and bad
//! configurations end in one clear line.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use baton_devtools::{
    client,
    cluster::{Cluster, ClusterSpec, check_identical_chains, log_tail},
};
use baton_node::config::NodeArgs;

const BIN: &str = env!("CARGO_BIN_EXE_baton");
const LONG: Duration = Duration::from_secs(30);

fn spec(dir: &Path) -> ClusterSpec {
    ClusterSpec {
        binary: BIN.into(),
        nodes: 3,
        data_dir: dir.to_path_buf(),
        rpc_port: 0,
        p2p_port: 0,
        block_time_ms: 500,
        extra: NodeArgs::default(),
    }
}

/// DESIGN invariants 1 and 2, with real processes: after SIGKILL of the leader a
/// survivor leads and produces the next block on top of every committed one;
/// the victim restarts as a follower, catches up, and all three agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_process_fails_over_and_the_victim_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::create(&spec(dir.path())).expect("cluster");
    cluster.start_all().expect("start");
    let victim = cluster.wait_for_leader(LONG).await.expect("leader");
    cluster.wait_for_height(3, LONG).await.expect("blocks");

    cluster.kill(victim).expect("kill");
    let survivors_head = check_identical_chains(&cluster)
        .await
        .expect("survivors agree");
    let new_leader = cluster.wait_for_leader(LONG).await.expect("new leader");
    assert_ne!(new_leader, victim);
    cluster
        .wait_for_height(survivors_head + 2, LONG)
        .await
        .expect("blocks after failover");

    cluster.start(victim).expect("restart");
    let head = survivors_head + 4;
    cluster
        .wait_for_height(head, LONG)
        .await
        .expect("victim catches up");
    let verified = check_identical_chains(&cluster).await.expect("no fork");
    assert!(verified >= head);
    cluster.stop_all(Duration::from_secs(5));
}

/// Fail-stop: a node whose critical task ends (here its sequencer, stopped through
/// the test-only fault hook) says which, stops, and exits non-zero, so an
/// orchestrator restarts it; the others elect a leader and carry on (invariant 5:
/// a failed node never leads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_critical_task_dies_exits_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(dir.path());
    spec.extra.fault.fault_injection = Some(true);
    let mut cluster = Cluster::create(&spec).expect("cluster");
    cluster.start_all().expect("start");
    let leader = cluster.wait_for_leader(LONG).await.expect("leader");
    cluster.wait_for_height(2, LONG).await.expect("blocks");

    let url = cluster.node(leader).expect("node").rpc_url.clone();
    client::fault_stop_task(&url, "sequencer", Duration::from_secs(2))
        .await
        .expect("fault hook");
    let deadline = Instant::now() + LONG;
    let exit = loop {
        if let Some((id, status)) = cluster.reap().into_iter().find(|(id, _)| *id == leader) {
            break (id, status);
        }
        assert!(Instant::now() < deadline, "the node did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.1.code(), Some(1), "exits non-zero");
    let log = log_tail(&cluster.node(leader).expect("node").log_path, 20);
    assert!(
        log.contains("critical task sequencer"),
        "says which task: {log}"
    );

    let next = cluster.wait_for_leader(LONG).await.expect("new leader");
    assert_ne!(next, leader);
    let head = check_identical_chains(&cluster)
        .await
        .expect("survivors agree");
    cluster
        .wait_for_height(head + 2, LONG)
        .await
        .expect("blocks after the failed leader left");
    cluster.stop_all(Duration::from_secs(5));
}

/// Runs `baton node` with `args` and returns (exit code, stderr).
fn run_node(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .arg("node")
        .args(args)
        .output()
        .expect("run baton");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_clear_failure((code, stderr): (Option<i32>, String), expected: &str) {
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(
        !stderr.contains("stack backtrace"),
        "no backtrace: {stderr}"
    );
}

#[test]
fn bad_configurations_exit_with_one_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::create(&spec(dir.path())).expect("cluster");
    let config = cluster.nodes[0]
        .config_path
        .to_str()
        .expect("utf-8 path")
        .to_string();

    assert_clear_failure(
        run_node(&["--config", &config, "--id", "7"]),
        "node id 7 is not one of the members",
    );
    assert_clear_failure(
        run_node(&["--config", &config, "--heartbeat-ms", "500"]),
        "timings contradict each other",
    );
    assert_clear_failure(
        run_node(&[
            "--config",
            &config,
            "--election-timeout-min-ms",
            "280",
            "--election-timeout-max-ms",
            "200",
        ]),
        "timings contradict each other",
    );

    // Node 2's data dir under node 1's identity: wrong key for member 1.
    let node2_dir = dir.path().join("node2");
    assert_clear_failure(
        run_node(&[
            "--config",
            &config,
            "--data-dir",
            node2_dir.to_str().expect("utf-8"),
        ]),
        "but member 1 is configured as peer",
    );

    // A corrupt database.
    let db = dir.path().join("node1/db");
    std::fs::create_dir_all(&db).expect("mkdir");
    std::fs::write(db.join("CURRENT"), "garbage\n").expect("write");
    assert_clear_failure(run_node(&["--config", &config]), "cannot open database");
}

#[test]
fn a_data_dir_of_another_chain_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::create(&spec(dir.path())).expect("cluster");
    let config = cluster.nodes[0]
        .config_path
        .to_str()
        .expect("utf-8 path")
        .to_string();

    // Write node 1's identity for the dev chain by opening its store once.
    {
        let store = baton_storage::Store::open(&dir.path().join("node1/db")).expect("open");
        store
            .set_identity(&baton_storage::Identity {
                node_id: 1,
                genesis: alloy_primitives::B256::repeat_byte(0xab),
                format: baton_storage::DATA_FORMAT,
            })
            .expect("identity");
    }
    assert_clear_failure(run_node(&["--config", &config]), "belongs to another chain");
}
