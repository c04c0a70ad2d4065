//! baton-trie: the state's Merkle-Patricia tries, stored node by node under their
//! path, so that a block's new root costs what the block changed, not the size of
//! the state (DESIGN §6).
//!
//! ```text
//!  store: (owner, path) ──▶ RLP of the node at that path     owner: zero for the
//!                                                              account trie, keccak(address)
//!  update(changed keys, sorted) ──load the nodes on their paths──▶ rebuild those paths
//!        ──▶ new root + the nodes to write (and delete) at their paths, for the block's batch
//!  proof(key) ──walk root → key──▶ the nodes on the path (EIP-1186)
//! ```
//!
//! Why by path and not by hash: a node's path never changes while it exists (a
//! branch sits where its keys diverge), so an update rewrites exactly the nodes on
//! the changed paths and deletes exactly the ones that vanished, with no garbage to
//! collect; and a proof is a walk of point reads. Every node is stored, inlined ones
//! (under 32 bytes) included, and checked against its parent's reference when read.
//!
//! Key types: [`NodeStore`] (where nodes are read from), [`update`] and
//! [`TrieWrites`], [`proof`], [`Overlay`] (pending writes over a store, e.g. for
//! state at an older block).

mod node;
mod proof;
mod update;

use std::collections::BTreeMap;

use alloy_primitives::B256;
pub use alloy_trie::Nibbles;

pub use proof::{get, proof};
pub use update::{Change, update};

/// Where a trie's nodes are read from.
///
/// Contract: `node(owner, path)` returns exactly what the last committed
/// [`TrieWrites`] for `owner` put at `path` (or `None` if it deleted it or never
/// wrote it).
pub trait NodeStore {
    /// The RLP of the node at `path` in trie `owner`.
    fn node(&self, owner: B256, path: &Nibbles) -> Result<Option<Vec<u8>>, TrieError>;
}

/// Why a trie could not be read or updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrieError {
    #[error("trie {owner} is corrupt at path {path}: {why}")]
    Corrupt {
        owner: B256,
        path: String,
        why: String,
    },
    #[error("cannot read trie nodes: {0}")]
    Store(String),
}

/// What an [`update`] changed: the new root and the nodes to write (`Some`) or
/// delete (`None`) at their paths, to be committed in one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrieWrites {
    pub root: B256,
    pub nodes: BTreeMap<Nibbles, Option<Vec<u8>>>,
}

/// Pending [`TrieWrites`] of several tries over a store: reads see the writes.
#[derive(Debug)]
pub struct Overlay<'a, S> {
    store: &'a S,
    writes: BTreeMap<B256, TrieWrites>,
}

impl<'a, S: NodeStore> Overlay<'a, S> {
    pub fn new(store: &'a S) -> Self {
        Self {
            store,
            writes: BTreeMap::new(),
        }
    }

    /// Layers `writes` of trie `owner` over what was there.
    pub fn apply(&mut self, owner: B256, writes: TrieWrites) {
        let layer = self.writes.entry(owner).or_default();
        layer.root = writes.root;
        layer.nodes.extend(writes.nodes);
    }

    /// Forgets what the store holds of trie `owner`: it reads as empty (a wiped
    /// storage trie) until written again.
    pub fn wipe(&mut self, owner: B256, empty_root: B256) {
        let mut nodes = BTreeMap::new();
        nodes.insert(Nibbles::new(), None);
        self.writes.insert(
            owner,
            TrieWrites {
                root: empty_root,
                nodes,
            },
        );
    }
}

impl<S: NodeStore> NodeStore for Overlay<'_, S> {
    fn node(&self, owner: B256, path: &Nibbles) -> Result<Option<Vec<u8>>, TrieError> {
        if let Some(layer) = self.writes.get(&owner)
            && let Some(node) = layer.nodes.get(path)
        {
            return Ok(node.clone());
        }
        self.store.node(owner, path)
    }
}
