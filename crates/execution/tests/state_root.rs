//! The incremental state root against a from-scratch root (DESIGN §6), on random
//! blocks of transfers, account and contract creations, storage writes and
//! clears, self-destructs, reverts and out-of-gas calls, applied as every node
//! applies them, with a node restart in the middle of one block per seed.

use std::collections::BTreeMap;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSignerSync;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_trie::{HashBuilder, KECCAK_EMPTY, Nibbles, TrieAccount, proof::verify_proof};
use baton_execution::{
    BlockBuilder, BlockStep, apply_entry, next_base_fee, write_genesis, write_sealed,
};
use baton_primitives::{
    BlockEnd, BlockStart, ChainSpec, SealedBlock, SequencerEntry, TxBatch, dev_accounts,
};
use baton_storage::{AccountRecord, Store};

const SEEDS: u64 = 10;
const BLOCKS: u64 = 40;
const SENDERS: u32 = 4;
/// Contracts only use slots below this, so writes often land on set slots and
/// storage tries shrink to nothing as often as they grow.
const SLOTS: u64 = 6;

/// The code every deployed contract runs (26 bytes):
///
/// ```text
/// 00 36     CALLDATASIZE
/// 01 80     DUP1
/// 02 15     ISZERO
/// 03 60 0f  PUSH1 0x0f
/// 05 57     JUMPI          no calldata: to 0f
/// 06 60 40  PUSH1 0x40
/// 08 14     EQ
/// 09 60 12  PUSH1 0x12
/// 0b 57     JUMPI          64 bytes of calldata: to 12
/// 0c 5f     PUSH0
/// 0d 5f     PUSH0
/// 0e fd     REVERT         any other length reverts
/// 0f 5b     JUMPDEST
/// 10 33     CALLER
/// 11 ff     SELFDESTRUCT   to the caller (EIP-6780: an older contract only pays out)
/// 12 5b     JUMPDEST
/// 13 60 20  PUSH1 0x20
/// 15 35     CALLDATALOAD   value = calldata[32..64]
/// 16 5f     PUSH0
/// 17 35     CALLDATALOAD   slot = calldata[0..32]
/// 18 55     SSTORE         storage[slot] = value (zero clears it)
/// 19 00     STOP
/// ```
const RUNTIME: [u8; 26] = [
    0x36, 0x80, 0x15, 0x60, 0x0f, 0x57, 0x60, 0x40, 0x14, 0x60, 0x12, 0x57, 0x5f, 0x5f, 0xfd, 0x5b,
    0x33, 0xff, 0x5b, 0x60, 0x20, 0x35, 0x5f, 0x35, 0x55, 0x00,
];

/// How a creation's init code ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Deploy,
    SelfDestruct,
    Revert,
}

/// Init code that writes `slots` (slot, value), then ends as `ending`:
///
/// ```text
/// each slot:     60 vv  PUSH1 value
///                60 ss  PUSH1 slot
///                55     SSTORE
/// Deploy:        60 1a  PUSH1 26        length of RUNTIME
///                80     DUP1
///                60 oo  PUSH1 oo        where RUNTIME starts: right after this tail
///                5f     PUSH0
///                39     CODECOPY        memory[0..26] = RUNTIME
///                5f     PUSH0
///                f3     RETURN          memory[0..26] is the contract's code
///                RUNTIME
/// SelfDestruct:  33     CALLER
///                ff     SELFDESTRUCT    created in this transaction: gone (EIP-6780)
/// Revert:        5f 5f  PUSH0 PUSH0
///                fd     REVERT
/// ```
fn init_code(slots: &[(u8, u8)], ending: Ending) -> Bytes {
    let mut code: Vec<u8> = slots
        .iter()
        .flat_map(|&(slot, value)| [0x60, value, 0x60, slot, 0x55])
        .collect();
    match ending {
        Ending::Deploy => {
            let offset = u8::try_from(code.len() + 9).expect("short init code");
            code.extend([0x60, 26, 0x80, 0x60, offset, 0x5f, 0x39, 0x5f, 0xf3]);
            code.extend(RUNTIME);
        }
        Ending::SelfDestruct => code.extend([0x33, 0xff]),
        Ending::Revert => code.extend([0x5f, 0x5f, 0xfd]),
    }
    code.into()
}

/// Calldata that makes a deployed contract run `SSTORE(slot, value)`.
fn store_call(slot: u64, value: U256) -> Bytes {
    let mut input = U256::from(slot).to_be_bytes::<32>().to_vec();
    input.extend(value.to_be_bytes::<32>());
    input.into()
}

/// SplitMix64: a seeded, reproducible stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Zero one time in four: a zero payment only touches its payee.
    fn amount(&mut self) -> U256 {
        match self.below(4) {
            0 => U256::ZERO,
            _ => U256::from(1 + self.below(1 << 50)),
        }
    }
}

/// What a generated transaction does; it must succeed or fail as its kind says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pay,
    PayFresh,
    PayAhead,
    Create(Ending),
    Store,
    Destroy,
    Revert,
    OutOfGas,
}

impl Kind {
    fn succeeds(self) -> bool {
        !matches!(
            self,
            Kind::Create(Ending::Revert) | Kind::Revert | Kind::OutOfGas
        )
    }
}

/// The transaction generator and what it knows of the chain.
struct World {
    rng: Rng,
    chain_id: u64,
    signers: Vec<PrivateKeySigner>,
    /// Each sender's next nonce: every generated transaction executes, so each
    /// one uses the next.
    nonces: Vec<u64>,
    /// Accounts without code that were paid (perhaps nothing).
    payees: Vec<Address>,
    contracts: Vec<Address>,
    /// Every address a transaction named or created, whether or not it exists.
    addresses: Vec<Address>,
}

/// A transaction to sign: what it does, its recipient, calldata and gas limit.
type Plan = (Kind, TxKind, Bytes, u64);

impl World {
    fn new(seed: u64, spec: &ChainSpec) -> Self {
        let signers: Vec<PrivateKeySigner> = dev_accounts(SENDERS)
            .iter()
            .map(|account| PrivateKeySigner::from_bytes(&account.private_key).expect("key"))
            .collect();
        let mut payees: Vec<Address> = signers.iter().map(|s| s.address()).collect();
        payees.push(Address::ZERO); // the coinbase, paid every block
        Self {
            rng: Rng(seed),
            chain_id: spec.chain_id,
            nonces: vec![0; SENDERS as usize],
            signers,
            addresses: payees.clone(),
            payees,
            contracts: Vec::new(),
        }
    }

    fn transaction(&mut self) -> (Kind, (Bytes, Address)) {
        let from = self.rng.below(SENDERS.into()) as usize;
        let choices = if self.contracts.is_empty() { 6 } else { 12 };
        let (kind, to, input, gas_limit) = match self.rng.below(choices) {
            4 | 5 => self.create(from),
            choice @ 6.. => self.call(choice),
            choice => {
                let (kind, to) = self.payment(choice);
                if kind != Kind::Pay {
                    self.addresses.push(to);
                }
                (kind, TxKind::Call(to), Bytes::new(), 21_000)
            }
        };
        let mut tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce: self.nonces[from],
            gas_limit,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to,
            value: self.rng.amount(),
            input,
            ..Default::default()
        };
        self.nonces[from] += 1;
        let signer = &self.signers[from];
        let signature = signer.sign_transaction_sync(&mut tx).expect("sign");
        let raw = TxEnvelope::from(tx.into_signed(signature)).encoded_2718();
        (kind, (raw.into(), signer.address()))
    }

    /// A payment; `choice` (0 to 3) picks to whom.
    fn payment(&mut self, choice: u64) -> (Kind, Address) {
        match choice {
            0 | 1 => (Kind::Pay, self.rng.pick(&self.payees)),
            2 => {
                let to = Address::from_word(keccak256(self.rng.next().to_be_bytes()));
                self.payees.push(to);
                (Kind::PayFresh, to)
            }
            // Where a sender's next creation may put its contract: then it is
            // created over an existing account (deleted if it destroys itself).
            _ => {
                let sender = self.rng.below(SENDERS.into()) as usize;
                let nonce = self.nonces[sender] + self.rng.below(3);
                (Kind::PayAhead, self.signers[sender].address().create(nonce))
            }
        }
    }

    fn create(&mut self, from: usize) -> Plan {
        let ending = match self.rng.below(5) {
            0 => Ending::SelfDestruct,
            1 => Ending::Revert,
            _ => Ending::Deploy,
        };
        let slots: Vec<(u8, u8)> = (0..self.rng.below(4))
            .map(|_| (self.rng.below(SLOTS) as u8, self.rng.next() as u8))
            .collect();
        let address = self.signers[from].address().create(self.nonces[from]);
        self.addresses.push(address);
        if ending == Ending::Deploy {
            self.contracts.push(address);
        }
        let code = init_code(&slots, ending);
        (Kind::Create(ending), TxKind::Create, code, 300_000)
    }

    /// A call to a deployed contract; `choice` (6 to 11) picks what it does.
    fn call(&mut self, choice: u64) -> Plan {
        let contract = TxKind::Call(self.rng.pick(&self.contracts));
        let slot = self.rng.below(SLOTS);
        match choice {
            6..=8 => {
                let input = store_call(slot, self.rng.amount());
                (Kind::Store, contract, input, 100_000)
            }
            9 => (Kind::Destroy, contract, Bytes::new(), 100_000),
            10 => (Kind::Revert, contract, Bytes::from_static(&[1]), 100_000),
            // Enough for the intrinsic cost and its EIP-7623 floor, less than the
            // 2,300 an SSTORE needs left: out of gas.
            _ => {
                let input = store_call(slot, U256::from(1 + self.rng.below(255)));
                (Kind::OutOfGas, contract, input, 22_000)
            }
        }
    }
}

/// An account as the store holds it, with every slot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    record: AccountRecord,
    slots: BTreeMap<U256, U256>,
}

/// The whole flat state after a block.
type State = BTreeMap<Address, Account>;

/// A trie's root from scratch: alloy-trie's builder over every (hashed key, leaf).
fn root(mut leaves: Vec<(B256, Vec<u8>)>) -> B256 {
    leaves.sort();
    let mut builder = HashBuilder::default();
    for (key, leaf) in &leaves {
        builder.add_leaf(Nibbles::unpack(key), leaf);
    }
    builder.root()
}

fn account_leaf(record: &AccountRecord) -> Vec<u8> {
    alloy_rlp::encode(TrieAccount {
        nonce: record.nonce,
        balance: record.balance,
        storage_root: record.storage_root,
        code_hash: record.code_hash,
    })
}

/// Reads the whole flat state and checks it against `head`: each account's
/// storage root is the from-scratch root of its slots, each account (and the
/// absence of each `addresses` entry not in the state) is proven by the stored
/// account trie under the header's root, and that root is the from-scratch root.
fn check_state(store: &Store, head: &SealedBlock, addresses: &[Address], at: &str) -> State {
    let mut state = State::new();
    for address in store.first_accounts(usize::MAX).expect("accounts") {
        let record = store.account(address).expect("read").expect("listed");
        assert!(
            record.nonce != 0 || !record.balance.is_zero() || record.code_hash != KECCAK_EMPTY,
            "{at}: EIP-161: no empty account is kept ({address})"
        );
        let slots: BTreeMap<U256, U256> = store
            .storage_slots(address)
            .expect("slots")
            .into_iter()
            .collect();
        let storage_root = root(
            slots
                .iter()
                .map(|(slot, value)| (keccak256(B256::from(*slot)), alloy_rlp::encode(value)))
                .collect(),
        );
        assert_eq!(
            record.storage_root, storage_root,
            "{at}: the storage root of {address} is not the from-scratch root of its slots {slots:?}"
        );
        state.insert(address, Account { record, slots });
    }
    let state_root = head.header.state_root;
    for address in state.keys().chain(addresses) {
        let key = Nibbles::unpack(keccak256(address));
        let leaf = state.get(address).map(|a| account_leaf(&a.record));
        let proof = baton_trie::proof(store, B256::ZERO, &key).expect("proof");
        verify_proof(state_root, key, leaf, &proof).unwrap_or_else(|e| {
            panic!("{at}: {address} in the store is not what the header's trie holds: {e}")
        });
    }
    let leaves = state
        .iter()
        .map(|(address, a)| (keccak256(address), account_leaf(&a.record)))
        .collect();
    assert_eq!(
        state_root,
        root(leaves),
        "{at}: the sealed state root is not the from-scratch root"
    );
    state
}

/// State at random earlier blocks reads as they left it (`states[n]` is the
/// state after block n; the last one is the head's).
fn check_history(store: &Store, states: &[State], world: &mut World, at: &str) {
    for _ in 0..8 {
        let n = world.rng.below(states.len() as u64 - 1);
        let address = world.rng.pick(&world.addresses);
        let then = states[n as usize].get(&address);
        assert_eq!(
            store.account_at(address, n).expect("read"),
            then.map(|a| a.record.clone()),
            "{at}: {address} at block {n}"
        );
        let slot = U256::from(world.rng.below(SLOTS));
        assert_eq!(
            store.storage_at(address, slot, n).expect("read"),
            then.and_then(|a| a.slots.get(&slot).copied())
                .unwrap_or_default(),
            "{at}: slot {slot} of {address} at block {n}"
        );
    }
}

/// A node's chain: its store, the head block, and the block open on top of it.
struct Node {
    dir: tempfile::TempDir,
    spec: ChainSpec,
    store: Store,
    head: SealedBlock,
    open: Option<BlockBuilder>,
}

impl Node {
    /// Starts as a node does: opens the store in `dir` (writing the genesis into
    /// a new one) and picks up the head and the open block it holds.
    fn start(dir: tempfile::TempDir, spec: ChainSpec) -> Self {
        let store = Store::open(dir.path()).expect("open");
        if store.head().expect("read").is_none() {
            write_genesis(&store, &spec).expect("genesis");
        }
        let (number, hash) = store.head().expect("read").expect("head");
        let head = store.block(number).expect("read").expect("head block");
        assert_eq!(head.hash, hash);
        let open = store
            .open_block()
            .expect("read")
            .map(|open| BlockBuilder::replay(store.clone(), spec.chain_id, &open).expect("replay"));
        Self {
            dir,
            spec,
            store,
            head,
            open,
        }
    }

    /// Stops (every handle on the database goes) and starts again.
    fn restart(self) -> Self {
        drop(self.open);
        drop(self.store);
        Self::start(self.dir, self.spec)
    }

    fn apply(&mut self, entry: SequencerEntry, at: &str) -> BlockStep {
        apply_entry(
            &self.store,
            self.spec.chain_id,
            &self.head,
            &mut self.open,
            &entry,
        )
        .unwrap_or_else(|e| panic!("{at}: {e}"))
    }

    fn open_next(&mut self, at: &str) {
        let start = BlockStart {
            number: self.head.number() + 1,
            timestamp_ms: (self.head.header.timestamp + 1) * 1000,
            parent_hash: self.head.hash,
            base_fee: next_base_fee(&self.head.header),
            gas_limit: self.head.header.gas_limit,
            coinbase: Address::ZERO,
        };
        self.apply(SequencerEntry::BlockStart(start), at);
    }

    /// Applies a batch (every generated transaction executes) and, as the state
    /// machine does after each apply, persists the open block.
    fn extend(&mut self, txs: &[(Bytes, Address)], at: &str) {
        let batch = SequencerEntry::Transactions(TxBatch { txs: txs.to_vec() });
        match self.apply(batch, at) {
            BlockStep::Extended { skipped } => assert!(skipped.is_empty(), "{at}: {skipped:?}"),
            other => panic!("{at}: a batch gave {other:?}"),
        }
        let open = self.open.as_ref().expect("open");
        let mut write = self.store.chain_write();
        write.open_block(open.start()).expect("open block");
        write.append_open_txs(0, open.txs()).expect("open txs");
        write.commit().expect("commit");
    }

    /// Seals the open block with the hash a leader would send, and writes it.
    fn seal(&mut self, at: &str) {
        let open = self.open.as_ref().expect("open");
        let end = BlockEnd {
            number: open.start().number,
            hash: open.seal(&self.head.header).expect("seal").block.hash,
        };
        let BlockStep::Sealed(outcome) = self.apply(SequencerEntry::BlockEnd(end), at) else {
            panic!("{at}: the block end did not seal");
        };
        let mut write = self.store.chain_write();
        write_sealed(&mut write, &outcome).expect("write");
        write.close_open_block();
        write.commit().expect("commit");
        self.head = outcome.block;
    }
}

/// `BLOCKS` random blocks from genesis, each checked, with a restart halfway
/// through one of them.
fn run(seed: u64) {
    let spec = ChainSpec::dev_with_accounts(SENDERS);
    let mut world = World::new(seed, &spec);
    let mut node = Node::start(tempfile::tempdir().expect("tempdir"), spec);
    let genesis = check_state(&node.store, &node.head, &world.addresses, "genesis");
    let mut states = vec![genesis];
    let restart_at = 1 + world.rng.below(BLOCKS);
    for number in 1..=BLOCKS {
        let count = world.rng.below(13);
        let (kinds, txs): (Vec<Kind>, Vec<_>) = (0..count).map(|_| world.transaction()).unzip();
        let at = format!("seed {seed}, block {number} {kinds:?}");
        let (first, second) = txs.split_at(world.rng.below(txs.len() as u64 + 1) as usize);
        node.open_next(&at);
        node.extend(first, &at);
        if number == restart_at {
            node = node.restart();
        }
        node.extend(second, &at);
        let executed = node.open.as_ref().expect("open").executed();
        let statuses: Vec<bool> = executed.iter().map(|e| e.receipt.status()).collect();
        let expected: Vec<bool> = kinds.iter().map(|k| k.succeeds()).collect();
        assert_eq!(statuses, expected, "{at}: receipt statuses");
        node.seal(&at);
        states.push(check_state(&node.store, &node.head, &world.addresses, &at));
        check_history(&node.store, &states, &mut world, &at);
    }
}

/// DESIGN §6: a seal costs what the block changed; the root must still be exact.
/// Random blocks (see the module doc), with a restart mid-block in each seed:
/// after every block the incremental root in the header equals the root built
/// from scratch over every account and slot in the store, the stored tries prove
/// each account, and state at earlier blocks reads as those blocks left it.
#[test]
fn incremental_state_root_equals_from_scratch_root_on_random_blocks() {
    for seed in 1..=SEEDS {
        run(seed);
    }
}
