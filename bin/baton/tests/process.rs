//! Real `baton` processes (DESIGN §8, layer 4): SIGKILL the leader, restart it,
//! and check the chains; a node whose critical task dies exits non-zero; and bad
//! configurations end in one clear line.

use std::{
    path::Path,
    process::{Command, ExitStatus},
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use baton_consensus::ChangeReason;
use baton_devtools::{
    client,
    cluster::{Cluster, ClusterSpec, check_identical_chains, log_tail},
};
use baton_node::config::NodeArgs;
use baton_primitives::{NodeId, dev_accounts};
use jsonrpsee::{
    core::{client::ClientT, params::BatchRequestBuilder},
    http_client::HttpClientBuilder,
    rpc_params,
};

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
        netns: false,
        joiners: 0,
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
    reach_and_agree(&mut cluster, survivors_head + 4, "victim catches up").await;
    cluster.stop_all(Duration::from_secs(5));
}

/// `baton status --rpc URL` when the node at URL is down: it asks the members it
/// learned of from that URL before, and shows the dead one as unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_dead_node_asks_the_members_it_learned_of() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::create(&spec(dir.path())).expect("cluster");
    cluster.start_all().expect("start");
    cluster.wait_for_leader(LONG).await.expect("leader");
    let url = cluster.node(1).expect("node 1").rpc_url.clone();
    let status = || {
        let out = Command::new(BIN)
            .args(["status", "--rpc", &url])
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .output()
            .expect("baton status runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The first answer teaches `baton status` the members (on a loaded machine a
    // node may still be starting: ask until all three answer).
    let deadline = Instant::now() + LONG;
    loop {
        let (ok, table, said) = status();
        let answering = table
            .lines()
            .filter(|l| l.contains("http://") && !l.contains("unreachable"))
            .count();
        if ok && answering == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{table}\n{said}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    cluster.kill(1).expect("kill node 1");
    let (ok, table, said) = status();
    assert!(ok, "{said}");
    assert!(said.contains("does not answer"), "{said}");
    let unreachable: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("unreachable"))
        .collect();
    assert_eq!(unreachable.len(), 1, "{table}");
    assert!(unreachable[0].contains(&url), "{table}");
    cluster.stop_all(Duration::from_secs(5));
}

/// `baton ctl`, the operator's commands over the admin API: it refuses without the
/// token, hands leadership to the member named (invariant 5: a member that is not
/// ready is refused unless forced), and pauses and resumes every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_hands_over_pauses_and_resumes_with_the_admin_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "a-long-enough-admin-token\n").expect("token file");
    let mut spec = spec(dir.path());
    spec.extra.rpc.admin_token_file = Some(token.clone());
    let mut cluster = Cluster::create(&spec).expect("cluster");
    cluster.start_all().expect("start");
    let leader = cluster.wait_for_leader(LONG).await.expect("leader");
    cluster.wait_for_height(2, LONG).await.expect("blocks");
    let url = cluster.node(leader).expect("leader").rpc_url.clone();
    let ctl = |args: &[&str], with_token: bool| {
        let mut command = Command::new(BIN);
        command.args(["ctl", "--rpc", &url]);
        if with_token {
            command.arg("--token-file").arg(&token);
        }
        let out = command.args(args).output().expect("baton ctl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };

    let (ok, said) = ctl(&["pause"], false);
    assert!(!ok && said.contains("admin token"), "{said}");

    let to = (1..=3).find(|id| *id != leader).expect("another member");
    let (ok, said) = ctl(&["transfer-leader", "--to", &to.to_string()], true);
    assert!(ok, "{said}");
    let deadline = Instant::now() + LONG;
    while cluster.wait_for_leader(LONG).await.expect("leader") != to {
        assert!(Instant::now() < deadline, "node {to} never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (ok, said) = ctl(&["pause"], true);
    assert!(ok, "{said}");
    for id in 1..=3 {
        let url = &cluster.node(id).expect("node").rpc_url;
        let paused: bool = HttpClientBuilder::default()
            .build(url)
            .expect("client")
            .request("conductor_paused", rpc_params![])
            .await
            .expect("conductor_paused");
        assert!(paused, "node {id} paused");
    }
    let (ok, said) = ctl(&["resume"], true);
    assert!(ok, "{said}");
    assert!(said.matches("conductor_resume").count() == 3, "{said}");
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
    let (status, log) = wait_for_exit(&mut cluster, leader).await;
    assert_eq!(
        status.code(),
        Some(1),
        "exits non-zero, not {status}: {log}"
    );
    assert!(
        log.contains("critical task sequencer"),
        "says which task: {log}"
    );
    survivors_go_on(&mut cluster, leader).await;
    cluster.stop_all(Duration::from_secs(5));
}

/// Fail-stop on a full disk (DESIGN invariant 5: a failed node never leads). Each
/// node's database lives on a tmpfs of its own; another process fills the
/// leader's. The leader says the disk is full, stops and exits non-zero; the others
/// elect a leader and go on. Once space is freed it restarts, catches up, and every
/// node holds the same chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_fills_exits_non_zero_and_the_others_carry_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(dir.path());
    spec.extra.data.min_free_disk_mb = Some(32);
    let mut cluster = Cluster::create(&spec).expect("cluster");
    let _disks: Vec<Tmpfs> = (1..=3)
        .map(|id| Tmpfs::mount(&dir.path().join(format!("node{id}/db")), 512))
        .collect();
    cluster.start_all().expect("start");
    let victim = cluster.wait_for_leader(LONG).await.expect("leader");
    cluster.wait_for_height(2, LONG).await.expect("blocks");

    let filler = dir.path().join(format!("node{victim}/db/filler"));
    fill_until(&filler, 16 << 20);
    let (status, log) = wait_for_exit(&mut cluster, victim).await;
    assert_eq!(status.code(), Some(1), "exits non-zero: {log}");
    assert!(log.contains("disk full: "), "says why: {log}");
    let head = survivors_go_on(&mut cluster, victim).await;

    std::fs::remove_file(&filler).expect("free the disk");
    cluster.start(victim).expect("restart");
    reach_and_agree(&mut cluster, head + 4, "the restarted node catches up").await;
    cluster.stop_all(Duration::from_secs(5));
}

/// Waits for node `id`'s process to exit on its own; returns how, and its log's tail.
async fn wait_for_exit(cluster: &mut Cluster, id: NodeId) -> (ExitStatus, String) {
    let deadline = Instant::now() + LONG;
    let status = loop {
        if let Some((_, status)) = cluster.reap().into_iter().find(|(exited, _)| *exited == id) {
            break status;
        }
        assert!(Instant::now() < deadline, "node {id} did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (
        status,
        log_tail(&cluster.node(id).expect("node").log_path, 20),
    )
}

/// Invariant 5 after node `gone` failed: the others elect a leader among
/// themselves, agree on the chain and add blocks to it; returns the head they
/// agreed on.
async fn survivors_go_on(cluster: &mut Cluster, gone: NodeId) -> u64 {
    let next = cluster.wait_for_leader(LONG).await.expect("new leader");
    assert_ne!(next, gone);
    let head = check_identical_chains(cluster)
        .await
        .expect("survivors agree");
    cluster
        .wait_for_height(head + 2, LONG)
        .await
        .expect("blocks after the failed node left");
    head
}

/// A tmpfs of `mib` MiB mounted on a directory for the test's lifetime (needs
/// root, as the CI machine has).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, mib: u64) -> Self {
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}",
            path.display()
        );
        Self(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until its filesystem has less than `leave` bytes free.
fn fill_until(path: &Path, leave: u64) {
    use std::io::Write;
    let dir = path.parent().expect("a dir");
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 1 << 20];
    while baton_node::disk::free_bytes(dir).expect("statvfs") >= leave {
        if file.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = file.flush();
}

/// Execute once (DESIGN §6) and invariant 4: the leader applies its own batches
/// and seals from its admission's results instead of executing them again, the
/// followers execute every entry, and every node holds the same chain — so the
/// reused results are exactly what execution gives. Each node's `/metrics` shows
/// it, with its Raft state and RPC traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_executes_once_and_followers_agree_at_every_height() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::create(&spec(dir.path())).expect("cluster");
    cluster.start_all().expect("start");
    let leader = cluster.wait_for_leader(LONG).await.expect("leader");
    let url = cluster.node(leader).expect("node").rpc_url.clone();

    let sender = dev_accounts(1).remove(0);
    let signer = PrivateKeySigner::from_bytes(&sender.private_key).expect("key");
    for nonce in 0..40 {
        let (hash, raw) =
            client::signed_transfer(&signer, nonce, Address::repeat_byte(0x51)).expect("sign");
        let answer = client::send_raw_transaction(&url, &raw, LONG)
            .await
            .expect("acknowledged");
        assert_eq!(answer, hash);
    }
    let head = cluster.max_head().await.expect("heads");
    cluster
        .wait_for_height(head + 2, LONG)
        .await
        .expect("sealed");
    let verified = check_identical_chains(&cluster).await.expect("no fork");
    assert!(verified > head);
    // A batch's calls are metered one by one, as if each came alone.
    let mut batch = BatchRequestBuilder::new();
    for _ in 0..3 {
        batch
            .insert("web3_clientVersion", rpc_params![])
            .expect("batch");
    }
    let answers = HttpClientBuilder::default()
        .build(&url)
        .expect("client")
        .batch_request::<String>(batch)
        .await
        .expect("batch");
    assert_eq!(answers.num_successful_calls(), 3);

    for id in 1..=3 {
        let node_url = &cluster.node(id).expect("node").rpc_url;
        let page = client::metrics(node_url, LONG).await.expect("metrics");
        let count = |entry: &str, how: &str| {
            client::metric(
                &page,
                &format!("baton_apply_entries_total{{entry=\"{entry}\",how=\"{how}\"}}"),
            )
            .unwrap_or(0.0)
        };
        // The node's Raft state and RPC traffic, as an operator alerts on them.
        let sample = |name: &str| client::metric(&page, name);
        assert!(
            sample("baton_raft_term").is_some_and(|t| t >= 1.0),
            "{page}"
        );
        assert_eq!(sample("baton_raft_leader_id"), Some(leader as f64));
        assert_eq!(
            sample("baton_raft_role{role=\"leader\"}"),
            Some(if id == leader { 1.0 } else { 0.0 })
        );
        assert!(sample("baton_raft_apply_lag").is_some());
        assert!(sample("baton_rpc_connections").is_some());
        assert!(
            sample("baton_db_bytes{db=\"chain\"}").is_some_and(|b| b > 0.0),
            "the chain database's size: {page}"
        );
        assert!(sample("baton_db_bytes{db=\"raft\"}").is_some());
        if id == leader {
            assert!(
                sample(
                    "baton_rpc_requests_total{method=\"eth_sendRawTransaction\",outcome=\"ok\"}"
                )
                .is_some_and(|n| n >= 40.0),
                "{page}"
            );
            assert!(
                sample("baton_admission_ack_seconds_count").is_some_and(|n| n >= 40.0),
                "every acknowledgement timed: {page}"
            );
            assert!(sample("baton_batch_transactions_count").is_some_and(|n| n >= 1.0));
            assert!(
                sample("baton_rpc_requests_total{method=\"web3_clientVersion\",outcome=\"ok\"}")
                    .is_some_and(|n| n >= 3.0),
                "a batch's calls metered: {page}"
            );
        } else {
            assert!(
                sample("baton_raft_append_gap_seconds{quantile=\"0.99\"}").is_some(),
                "a follower times the leader's appends: {page}"
            );
        }
        if id == leader {
            assert!(
                count("batch", "reused") > 0.0,
                "the leader reuses its batches: {page}"
            );
            assert!(
                count("seal", "reused") > 0.0,
                "the leader reuses its seals: {page}"
            );
            assert_eq!(
                count("batch", "executed"),
                0.0,
                "the leader executed a batch twice"
            );
        } else {
            assert_eq!(count("batch", "reused") + count("seal", "reused"), 0.0);
            assert!(
                count("batch", "executed") > 0.0,
                "follower {id} executes: {page}"
            );
            assert!(
                count("seal", "executed") > 0.0,
                "follower {id} seals: {page}"
            );
        }
    }
    cluster.stop_all(Duration::from_secs(5));
}

/// A slow fault, a stalled leader (SIGSTOP: its sockets stay open, it answers
/// nothing): the others elect a leader and go on, writes sent through a follower
/// meanwhile are acknowledged by the new leader, and after SIGCONT the old leader
/// rejoins as a follower. Invariants 1–3: every acknowledged transaction is in
/// exactly one block, and every node holds the same chain (no height twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_is_replaced_and_rejoins_as_a_follower() {
    const SENT: u64 = 30;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::create(&spec(dir.path())).expect("cluster");
    cluster.start_all().expect("start");
    let stalled = cluster.wait_for_leader(LONG).await.expect("leader");
    cluster.wait_for_height(2, LONG).await.expect("blocks");
    let follower = (1..=3).find(|id| *id != stalled).expect("a follower");
    let url = cluster.node(follower).expect("node").rpc_url.clone();
    let term_before = client::node_status(&url, LONG).await.expect("status").term;

    let sender = dev_accounts(3).remove(2);
    let signer = PrivateKeySigner::from_bytes(&sender.private_key).expect("key");
    let mut acked = Vec::new();
    for nonce in 0..SENT {
        if nonce == 10 {
            cluster.signal(stalled, libc::SIGSTOP).expect("SIGSTOP");
        }
        if nonce == 20 {
            cluster.signal(stalled, libc::SIGCONT).expect("SIGCONT");
        }
        acked.push(send_until_acked(&url, &signer, nonce).await);
    }

    let status = client::node_status(&url, LONG).await.expect("status");
    assert!(status.term > term_before, "the others elected a new leader");
    let head = cluster.max_head().await.expect("heads");
    reach_and_agree(
        &mut cluster,
        head + 2,
        "every node, the one stopped too, goes on",
    )
    .await;
    assert_included_once(&url, sender.address, &acked).await;
    cluster.stop_all(Duration::from_secs(5));
}

/// A slow fault: a leader whose sealing crawls (5 s a block, injected) while its
/// Raft heartbeats on, so no election ever starts. DESIGN invariant 6: it steps
/// down to a ready member, which seals the open block on top of what was committed
/// (invariant 2); every write sent through a follower meanwhile is acknowledged and
/// in exactly one block (invariants 1–3), and every node holds the same chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_seals_slowly_steps_down() {
    const SENT: u64 = 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(dir.path());
    spec.extra.fault.fault_injection = Some(true);
    let mut cluster = Cluster::create(&spec).expect("cluster");
    cluster.start_all().expect("start");
    let slow = cluster.wait_for_leader(LONG).await.expect("leader");
    cluster.wait_for_height(2, LONG).await.expect("blocks");
    let follower = (1..=3).find(|id| *id != slow).expect("a follower");
    let url = cluster.node(follower).expect("node").rpc_url.clone();
    let slow_url = cluster.node(slow).expect("node").rpc_url.clone();

    client::fault_seal_delay(&slow_url, 5_000, LONG)
        .await
        .expect("fault hook");
    let sender = dev_accounts(4).remove(3);
    let signer = PrivateKeySigner::from_bytes(&sender.private_key).expect("key");
    let mut acked = Vec::new();
    for nonce in 0..SENT {
        acked.push(send_until_acked(&url, &signer, nonce).await);
    }
    let deadline = Instant::now() + LONG;
    loop {
        let status = client::node_status(&url, LONG).await.expect("status");
        let stepped_down = status.leader_id.is_some_and(|id| id != slow)
            && status
                .last_leader_change
                .as_ref()
                .is_some_and(|c| c.reason == ChangeReason::StepDown);
        if stepped_down {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow leader (node {slow}, its seal delay set) did not step down: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client::fault_seal_delay(&slow_url, 0, LONG)
        .await
        .expect("fault hook");

    let head = cluster.max_head().await.expect("heads");
    reach_and_agree(&mut cluster, head + 2, "blocks after the step-down").await;
    assert_included_once(&url, sender.address, &acked).await;
    cluster.stop_all(Duration::from_secs(5));
}

/// Invariants 1–2 once the cluster has gone on: every running node reaches block
/// `number` (`what` says why it should), and all hold the same chain up to it.
async fn reach_and_agree(cluster: &mut Cluster, number: u64, what: &str) {
    cluster
        .wait_for_height(number, LONG)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let verified = check_identical_chains(cluster).await.expect("no fork");
    assert!(verified >= number);
}

/// Sends `signer`'s transfer with `nonce` through `url` as a wallet does, the same
/// signed transaction again until it is acknowledged; returns its hash.
async fn send_until_acked(url: &str, signer: &PrivateKeySigner, nonce: u64) -> B256 {
    let (hash, raw) =
        client::signed_transfer(signer, nonce, Address::repeat_byte(0x52)).expect("sign");
    let deadline = Instant::now() + LONG;
    loop {
        match client::send_raw_transaction(url, &raw, Duration::from_secs(5)).await {
            Ok(answer) => {
                assert_eq!(answer, hash);
                return hash;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "nonce {nonce} never acknowledged: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Invariants 1–3 as a wallet checks them through `url`: `sender`'s nonce counts
/// exactly the acknowledged transactions, and each has a successful receipt.
async fn assert_included_once(url: &str, sender: Address, acked: &[B256]) {
    let rpc = HttpClientBuilder::default().build(url).expect("client");
    let nonce: String = rpc
        .request("eth_getTransactionCount", rpc_params![sender, "latest"])
        .await
        .expect("nonce");
    assert_eq!(
        nonce,
        format!("{:#x}", acked.len()),
        "exactly the acknowledged ones"
    );
    for hash in acked {
        let receipt: Option<serde_json::Value> = rpc
            .request("eth_getTransactionReceipt", rpc_params![hash])
            .await
            .expect("receipt");
        let receipt = receipt.unwrap_or_else(|| panic!("acknowledged {hash} is in no block"));
        assert_eq!(receipt["status"], "0x1", "{receipt}");
    }
}

/// DESIGN invariant 6 under a slow fault: a leader whose clock runs 60 s ahead
/// stamps its blocks in everyone's future. When it dies, its successor keeps one
/// block per block time by its own clock — it neither waits a minute for those
/// stamps nor steps down for the wait — and every node applies the chain (a block
/// stamped before its parent would halt them), identical everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successor_does_not_wait_for_a_leader_whose_clock_ran_ahead() {
    const TOKEN: &str = "process-test-admin-token-0123";
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    let mut spec = spec(dir.path());
    spec.extra.rpc.admin_token_file = Some(token_file);
    let mut cluster = Cluster::create(&spec).expect("cluster");
    let fast = 1;
    let config = cluster.node(fast).expect("node").config_path.clone();
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, format!("fault_clock_offset_ms = 60000\n{text}")).expect("config");
    cluster.start_all().expect("start");

    let leader = cluster.wait_for_leader(LONG).await.expect("leader");
    if leader != fast {
        let url = cluster.node(leader).expect("node").rpc_url.clone();
        client::transfer_leader(&url, TOKEN, fast, LONG)
            .await
            .expect("transfer");
    }
    let deadline = Instant::now() + LONG;
    while cluster.wait_for_leader(LONG).await.expect("leader") != fast {
        assert!(
            Instant::now() < deadline,
            "leadership did not move to node {fast}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let head = cluster.max_head().await.expect("heads");
    cluster
        .wait_for_height(head + 3, LONG)
        .await
        .expect("blocks stamped a minute ahead");

    cluster.kill(fast).expect("kill");
    let successor = cluster.wait_for_leader(LONG).await.expect("new leader");
    let head = check_identical_chains(&cluster)
        .await
        .expect("survivors agree");
    // A successor that waited for the stamps would need a minute; the block time
    // is 0.5 s, so 20 s is ample for six blocks.
    cluster
        .wait_for_height(head + 6, Duration::from_secs(20))
        .await
        .expect("the successor keeps producing by its own clock");
    assert_eq!(
        cluster.wait_for_leader(LONG).await.expect("leader"),
        successor,
        "the successor did not step down"
    );
    check_identical_chains(&cluster).await.expect("no fork");
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
    let db = dir.path().join("node1/db/raft");
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

    // Write node 1's identity for another chain by opening its Raft store once.
    {
        let store =
            baton_storage::RaftStore::open(&dir.path().join("node1/db/raft")).expect("open");
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

/// A new member, with real processes, on a chain whose log was purged behind a
/// snapshot: it catches up by the chunked snapshot (DESIGN §6: sent in chunks,
/// resumable, installed atomically). SIGKILLed as the first chunks reach it and
/// restarted, its data dir still opens and it catches up all the same; it is
/// promoted, and every member holds the same chain (invariant 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_killed_mid_snapshot_still_catches_up() {
    const TOKEN: &str = "process-test-admin-token-join";
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(dir.path());
    spec.nodes = 4;
    spec.joiners = 1;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    spec.extra.rpc.admin_token_file = Some(token_file);
    // Snapshots every 16 KiB of log, 16 entries kept behind them, sent 8 bytes a
    // chunk: the newcomer must take a snapshot, in so many chunks (some 20,000)
    // that the transfer lasts long enough to be cut off.
    spec.extra.data.snapshot_log_bytes = Some(16 << 10);
    spec.extra.data.snapshot_keep_entries = Some(16);
    spec.extra.data.snapshot_chunk_bytes = Some(8);
    let mut cluster = Cluster::create(&spec).expect("cluster");
    cluster.start_all().expect("start");
    let leader = cluster.wait_for_leader(LONG).await.expect("leader");
    let url = cluster.node(leader).expect("leader").rpc_url.clone();

    let signer = PrivateKeySigner::from_bytes(&dev_accounts(1)[0].private_key).expect("key");
    let mut acked = Vec::new();
    for nonce in 0..300 {
        acked.push(send_until_acked(&url, &signer, nonce).await);
    }
    let deadline = Instant::now() + LONG;
    while client::node_metric(&url, "baton_snapshots_built_total").await < 2.0 {
        assert!(Instant::now() < deadline, "the leader built no snapshot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let joined = baton_devtools::join::add_member(&mut cluster, TOKEN, true)
        .await
        .expect("the new member is added, caught up and promoted");
    assert_eq!(joined.crashes, 1, "killed while the snapshot arrived");
    assert!(joined.sent_bytes > 0.0, "it caught up by snapshot");
    let head = cluster.max_head().await.expect("head");
    reach_and_agree(&mut cluster, head + 2, "the promoted member follows").await;
    let four = cluster.node(4).expect("node 4").rpc_url.clone();
    assert_included_once(&four, signer.address(), &acked).await;
    cluster.stop_all(Duration::from_secs(5));
}
