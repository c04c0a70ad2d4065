//! What the targets share in one process: a one-node cluster to call, a scratch
//! chain to execute and apply on, and the record of every panic.

use std::{path::PathBuf, sync::OnceLock, time::Duration};

use alloy_primitives::{Address, Bytes};
use baton_consensus::{Consensus, RaftRequest, RaftResponse};
use baton_execution::{BlockBuilder, BlockStep, apply_entry, start_on, write_genesis};
use baton_primitives::{ChainSpec, SealedBlock, SequencerEntry, clock::now_ms, codec};
use baton_storage::Store;
use baton_testing::{RARE_SNAPSHOTS, TestCluster};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::json::Params;

/// A call that has not answered by then is hung: a finding.
const HUNG: Duration = Duration::from_secs(60);
/// Transactions or batches one scratch block takes before a fresh one is opened,
/// so state held in memory stays small.
const BLOCK_USES: usize = 256;

/// Every panic message seen in this process since it started, on any thread.
pub fn panics() -> Vec<String> {
    PANICS.lock().clone()
}

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The harness, started on first use.
pub(crate) fn get() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(Harness::start)
}

/// A file named `name` (one per thread) in this process's scratch dir, holding `data`.
pub(crate) fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    // In memory where there is a tmpfs: a file written per input is most of what
    // the file targets cost on a disk.
    let dir = DIR.get_or_init(|| {
        tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("scratch dir")
    });
    let path = dir
        .path()
        .join(format!("{:?}-{name}", std::thread::current().id()));
    std::fs::write(&path, data).expect("scratch file");
    path
}

pub(crate) struct Harness {
    runtime: tokio::runtime::Runtime,
    /// Keeps the node (and its data dir) for as long as the process runs.
    _cluster: Mutex<TestCluster>,
    methods: jsonrpsee::Methods,
    /// The node's consensus, which answers members' messages.
    consensus: Consensus,
    /// Where the node listens for its members (libp2p over TCP).
    p2p: std::net::SocketAddr,
    /// Every method name, sorted: an input's first byte picks one.
    names: Vec<&'static str>,
    scratch: Mutex<Scratch>,
}

/// A chain of its own to execute transactions and apply entries on, never
/// written past genesis: every block opened here is dropped unsealed.
struct Scratch {
    _dir: tempfile::TempDir,
    store: Store,
    chain_id: u64,
    gas_limit: u64,
    genesis: SealedBlock,
    open: Option<BlockBuilder>,
    uses: usize,
}

impl Harness {
    fn start() -> Self {
        record_panics();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let cluster = runtime.block_on(async {
            let cluster = TestCluster::start_with(1, 200, RARE_SNAPSHOTS, |_, config| {
                // Endless loops end quickly here: the fuzzer has more to try.
                config.rpc.exec.timeout = Duration::from_millis(100);
                config.rpc.exec.gas_cap = 30_000_000;
            })
            .await;
            cluster.wait_for_leader(Duration::from_secs(30)).await;
            cluster
        });
        let methods = cluster.nodes[&1].rpc_methods().clone();
        let consensus = cluster.nodes[&1].consensus().clone();
        let p2p = baton_p2p::tcp_socket_addr(&cluster.configs[&1].cluster.p2p_addr)
            .expect("the node listens on TCP");
        let mut names: Vec<&'static str> = methods.method_names().collect();
        names.sort_unstable();
        Self {
            runtime,
            _cluster: Mutex::new(cluster),
            methods,
            consensus,
            p2p,
            names,
            scratch: Mutex::new(Scratch::open()),
        }
    }

    /// A call of the method `data[0]` picks, with params built from the rest.
    pub(crate) fn rpc(&self, data: &[u8]) {
        let Some((&pick, rest)) = data.split_first() else {
            return;
        };
        let method = self.names[usize::from(pick) % self.names.len()];
        self.call(method, Params::new(rest).build());
    }

    /// `eth_sendRawTransaction` of `raw`, as a wallet sends it.
    pub(crate) fn send_raw(&self, raw: &[u8]) {
        self.call(
            "eth_sendRawTransaction",
            json!([Bytes::copy_from_slice(raw)]),
        );
    }

    /// Calls `method` in-process; the answer must be a JSON-RPC response.
    fn call(&self, method: &str, params: Value) {
        let request =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let asked = self.methods.raw_json_request(&request, 64);
        let answered = self
            .runtime
            .block_on(async { tokio::time::timeout(HUNG, asked).await });
        let Ok(answer) = answered else {
            panic!("{method} hung for {HUNG:?} on {request}");
        };
        let (response, _subscription) = answer.expect("a request the harness built parses");
        let response: Value = serde_json::from_str(response.get()).expect("JSON");
        assert!(
            response.get("result").is_some() != response.get("error").is_some(),
            "{method}: not a JSON-RPC response: {response}"
        );
    }

    /// `data` as a member's p2p message: decoded as a request and as a response
    /// (both cross the wire); a request that is not Raft's own is answered by
    /// the node, and the answer must encode. Raft's own (appends, votes,
    /// hand-overs, snapshot installs) are only decoded and encoded again: Raft
    /// acts on them under the sender's vote, trusting members as it must.
    pub(crate) fn member_message(&self, data: &[u8]) {
        if let Ok(response) = codec::decode::<RaftResponse>(data) {
            codec::encode(&response).expect("a decoded response encodes");
        }
        let Ok(request) = codec::decode::<RaftRequest>(data) else {
            return;
        };
        if request.is_raft_own() {
            codec::encode(&request).expect("a decoded request encodes");
            return;
        }
        let answering = self.consensus.answer(request);
        let answered = self
            .runtime
            .block_on(async { tokio::time::timeout(HUNG, answering).await });
        let Ok(answer) = answered else {
            panic!("a member's message hung for {HUNG:?}");
        };
        codec::encode(&answer).expect("an answer encodes");
    }

    /// `data` sent by a stranger to the node's p2p port on a fresh connection,
    /// which ends once the node has closed it or had 100 ms to read: what reaches
    /// libp2p's protocol negotiation and noise handshake before any peer id is known.
    pub(crate) fn stranger(&self, data: &[u8]) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.runtime.block_on(async {
            let mut stream = tokio::net::TcpStream::connect(self.p2p)
                .await
                .expect("the p2p port takes connections");
            let _ = stream.write_all(data).await;
            let _ = stream.shutdown().await;
            let mut answer = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_millis(100), stream.read_to_end(&mut answer))
                    .await;
            // A reset, not a close: no TIME_WAIT, so millions of connections do
            // not use up the ports.
            let _ = stream.set_zero_linger();
        });
    }

    /// The scratch chain's genesis block: what entries apply on.
    pub(crate) fn genesis(&self) -> SealedBlock {
        self.scratch.lock().genesis.clone()
    }

    /// Executes `raw` on an open scratch block from a funded dev account.
    pub(crate) fn execute(&self, raw: Bytes) {
        let mut scratch = self.scratch.lock();
        let funded = baton_primitives::dev_accounts(1)[0].address;
        let _ = scratch.block().execute(&raw, funded);
    }

    /// Applies `entry` to the scratch chain as a follower applies a committed one.
    pub(crate) fn apply(&self, entry: &SequencerEntry) {
        let mut scratch = self.scratch.lock();
        scratch.used();
        let Scratch {
            store,
            chain_id,
            genesis,
            open,
            ..
        } = &mut *scratch;
        if let Ok(BlockStep::Sealed(_)) = apply_entry(store, *chain_id, genesis, open, entry) {
            debug_assert!(open.is_none(), "a sealed block is no longer open");
        }
    }
}

impl Scratch {
    fn open() -> Self {
        let dir = tempfile::tempdir().expect("scratch chain dir");
        let store = Store::open(&dir.path().join("chain")).expect("scratch store");
        let spec = ChainSpec::dev();
        let genesis = write_genesis(&store, &spec).expect("genesis");
        Self {
            _dir: dir,
            store,
            chain_id: spec.chain_id,
            gas_limit: spec.gas_limit,
            genesis,
            open: None,
            uses: 0,
        }
    }

    /// Counts a use of the open block; drops it after [`BLOCK_USES`].
    fn used(&mut self) {
        self.uses += 1;
        if self.uses > BLOCK_USES {
            self.open = None;
            self.uses = 0;
        }
    }

    /// The open scratch block (opened on genesis if none is).
    fn block(&mut self) -> &mut BlockBuilder {
        self.used();
        let start = start_on(&self.genesis, now_ms(), self.gas_limit, Address::ZERO);
        self.open
            .get_or_insert_with(|| BlockBuilder::new(self.store.clone(), self.chain_id, start))
    }
}

/// Records every panic (a node's background tasks' too, which would otherwise
/// end quietly in a failed task) before the previous hook runs.
fn record_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.lock().push(info.to_string());
        previous(info);
    }));
}
