//! The state tries' nodes, by owner and path (see baton-trie): the account trie
//! (owner zero) and each account's storage trie (owner keccak(address)).
//!
//! Key: owner (32 bytes) ++ one byte per nibble of the path, so a trie's nodes are
//! one contiguous key range (a wiped storage trie is one range delete) and a
//! path sorts right after its parent.

use alloy_primitives::B256;
use baton_trie::{Nibbles, NodeStore, TrieError, TrieWrites};

use crate::{CF_TRIE, ChainWrite, Store, cf};

fn node_key(owner: &B256, path: &Nibbles) -> Vec<u8> {
    let mut key = Vec::with_capacity(32 + path.len());
    key.extend_from_slice(owner.as_slice());
    key.extend(path.iter());
    key
}

/// The first key after every node of `owner` (nibbles are below 0x10).
fn end_of(owner: &B256) -> Vec<u8> {
    let mut key = owner.to_vec();
    key.push(0x10);
    key
}

impl NodeStore for Store {
    fn node(&self, owner: B256, path: &Nibbles) -> Result<Option<Vec<u8>>, TrieError> {
        self.get(CF_TRIE, node_key(&owner, path))
            .map_err(|e| TrieError::Store(e.to_string()))
    }
}

impl ChainWrite<'_> {
    /// Writes and deletes trie `owner`'s nodes as an update decided.
    pub fn put_trie(&mut self, owner: &B256, writes: &TrieWrites) {
        let cf = cf(&self.db, CF_TRIE);
        for (path, node) in &writes.nodes {
            match node {
                Some(rlp) => self.batch.put_cf(cf, node_key(owner, path), rlp),
                None => self.batch.delete_cf(cf, node_key(owner, path)),
            }
        }
    }

    /// Deletes every node of trie `owner` (a storage trie whose account was
    /// destroyed or re-created).
    pub fn wipe_trie(&mut self, owner: &B256) {
        self.batch
            .delete_range_cf(cf(&self.db, CF_TRIE), owner.to_vec(), end_of(owner));
    }
}
