//! The incremental trie against a from-scratch root (DESIGN §6): random batches of
//! inserts, updates and deletes, including ones that split and merge runs and
//! collapse branches; after every batch the incremental root equals alloy-trie's
//! root over the whole key set, the store holds exactly the nodes reachable from
//! the root, and proofs of present and absent keys verify.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{B256, Bytes, keccak256};
use alloy_rlp::Decodable;
use alloy_trie::{EMPTY_ROOT_HASH, HashBuilder, Nibbles, nodes::TrieNode, proof::verify_proof};
use baton_trie::{NodeStore, TrieError, TrieWrites, proof, update};

/// Nodes by (owner, path), as a database would hold them.
#[derive(Default)]
struct MemStore {
    nodes: BTreeMap<(B256, Nibbles), Vec<u8>>,
}

impl NodeStore for MemStore {
    fn node(&self, owner: B256, path: &Nibbles) -> Result<Option<Vec<u8>>, TrieError> {
        Ok(self.nodes.get(&(owner, *path)).cloned())
    }
}

impl MemStore {
    fn commit(&mut self, owner: B256, writes: TrieWrites) {
        for (path, node) in writes.nodes {
            match node {
                Some(rlp) => self.nodes.insert((owner, path), rlp),
                None => self.nodes.remove(&(owner, path)),
            };
        }
    }

    /// Every path reachable from the root of `owner`.
    fn reachable(&self, owner: B256) -> BTreeSet<Nibbles> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![Nibbles::new()];
        while let Some(at) = todo.pop() {
            let Some(rlp) = self.nodes.get(&(owner, at)) else {
                continue;
            };
            seen.insert(at);
            match TrieNode::decode(&mut rlp.as_slice()).expect("node") {
                TrieNode::Branch(branch) => {
                    for nibble in branch.state_mask.iter() {
                        let mut child = at;
                        child.push(nibble);
                        todo.push(child);
                    }
                }
                TrieNode::Extension(ext) => todo.push(at.join(&ext.key)),
                _ => {}
            }
        }
        seen
    }
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
}

/// A key from a small space, so that batches hit existing keys and long shared
/// prefixes (deep runs, splits and merges) happen often.
fn key(rng: &mut Rng, shared_prefix: bool) -> B256 {
    let mut bytes = keccak256(rng.below(300).to_be_bytes()).0;
    if shared_prefix {
        bytes[..30].fill(0xab);
    }
    B256::from(bytes)
}

fn value(rng: &mut Rng) -> Vec<u8> {
    // Short values make some nodes shorter than 32 bytes: inlined in their parent.
    let len = if rng.below(4) == 0 {
        1
    } else {
        1 + rng.below(40) as usize
    };
    (0..len).map(|_| rng.below(256) as u8).collect()
}

fn scratch_root(model: &BTreeMap<B256, Vec<u8>>) -> B256 {
    if model.is_empty() {
        return EMPTY_ROOT_HASH;
    }
    let mut builder = HashBuilder::default();
    for (key, value) in model {
        builder.add_leaf(Nibbles::unpack(key), value);
    }
    builder.root()
}

#[test]
fn incremental_roots_equal_from_scratch_roots_and_proofs_verify() {
    for seed in 0..40 {
        let mut rng = Rng(seed);
        let owner = B256::with_last_byte(seed as u8);
        let mut store = MemStore::default();
        let mut model: BTreeMap<B256, Vec<u8>> = BTreeMap::new();
        for round in 0..30 {
            let mut batch: BTreeMap<B256, Option<Vec<u8>>> = BTreeMap::new();
            let size = 1 + rng.below(if round == 0 { 200 } else { 25 });
            for _ in 0..size {
                let shared = rng.below(5) == 0;
                let k = key(&mut rng, shared);
                let delete = !model.is_empty() && rng.below(3) == 0;
                let k = if delete {
                    // Delete an existing key most of the time, a missing one sometimes.
                    let nth = rng.below(model.len() as u64) as usize;
                    if rng.below(5) == 0 {
                        k
                    } else {
                        *model.keys().nth(nth).expect("nth")
                    }
                } else {
                    k
                };
                batch.insert(k, (!delete).then(|| value(&mut rng)));
            }
            for (k, v) in &batch {
                match v {
                    Some(v) => model.insert(*k, v.clone()),
                    None => model.remove(k),
                };
            }
            let changes: Vec<(Nibbles, Option<Vec<u8>>)> = batch
                .into_iter()
                .map(|(k, v)| (Nibbles::unpack(k), v))
                .collect();
            let writes = update(&store, owner, &changes).expect("update");
            let root = writes.root;
            store.commit(owner, writes);
            assert_eq!(root, scratch_root(&model), "seed {seed} round {round}");

            let stored: BTreeSet<Nibbles> = store
                .nodes
                .keys()
                .filter(|(o, _)| *o == owner)
                .map(|(_, p)| *p)
                .collect();
            assert_eq!(
                stored,
                store.reachable(owner),
                "no stale nodes: seed {seed} round {round}"
            );

            for _ in 0..5 {
                let shared = rng.below(5) == 0;
                let k = key(&mut rng, shared);
                let nodes: Vec<Bytes> = proof(&store, owner, &Nibbles::unpack(k)).expect("proof");
                verify_proof(root, Nibbles::unpack(k), model.get(&k).cloned(), &nodes)
                    .unwrap_or_else(|e| panic!("seed {seed} round {round}: {e}"));
            }
        }
    }
}

#[test]
fn an_empty_batch_keeps_the_root_and_deleting_everything_empties_the_store() {
    let owner = B256::ZERO;
    let mut store = MemStore::default();
    let keys: Vec<B256> = (0u64..50).map(|i| keccak256(i.to_be_bytes())).collect();
    let mut changes: Vec<_> = keys
        .iter()
        .map(|k| (Nibbles::unpack(k), Some(vec![1, 2, 3])))
        .collect();
    changes.sort();
    let writes = update(&store, owner, &changes).expect("insert");
    let root = writes.root;
    store.commit(owner, writes);
    let same = update(&store, owner, &[]).expect("nothing");
    assert_eq!(same.root, root);
    assert!(same.nodes.is_empty());

    let deletes: Vec<_> = changes.iter().map(|(k, _)| (*k, None)).collect();
    let writes = update(&store, owner, &deletes).expect("delete");
    assert_eq!(writes.root, EMPTY_ROOT_HASH);
    store.commit(owner, writes);
    assert!(store.nodes.is_empty(), "{} nodes left", store.nodes.len());
}

#[test]
fn a_tampered_node_is_refused() {
    let owner = B256::ZERO;
    let mut store = MemStore::default();
    let mut changes: Vec<_> = (0u64..20)
        .map(|i| {
            (
                Nibbles::unpack(keccak256(i.to_be_bytes())),
                Some(vec![7; 40]),
            )
        })
        .collect();
    changes.sort();
    let writes = update(&store, owner, &changes).expect("insert");
    store.commit(owner, writes);
    // Replace a child of the root with a different, well-formed node.
    let child = store
        .nodes
        .keys()
        .find(|(_, p)| p.len() == 1)
        .copied()
        .expect("a child of the root");
    let fake = store
        .nodes
        .iter()
        .find(|(at, rlp)| **at != child && rlp.len() > 40 && **rlp != store.nodes[&child])
        .map(|(_, rlp)| rlp.clone())
        .expect("another node");
    store.nodes.insert(child, fake);
    let touch = vec![(
        child.1.join(&Nibbles::unpack(B256::ZERO).slice(1..)),
        Some(vec![1]),
    )];
    let err = update(&store, owner, &touch).expect_err("tampered");
    assert!(matches!(err, TrieError::Corrupt { .. }), "{err}");
}
