//! Reading one key: its value, and the EIP-1186 proof of it (the nodes on the path
//! from the root towards the key).

use alloy_primitives::{B256, Bytes};
use alloy_rlp::Decodable;
use alloy_trie::{Nibbles, nodes::TrieNode};

use crate::{NodeStore, TrieError};

/// The RLP of every node on `key`'s path in trie `owner`, root first. It proves the
/// key's value, or its absence, against the root hash. A node short enough to be
/// inlined in its parent is part of the parent's RLP, so it is not listed again.
pub fn proof<S: NodeStore>(store: &S, owner: B256, key: &Nibbles) -> Result<Vec<Bytes>, TrieError> {
    let mut nodes = Vec::new();
    walk(store, owner, key, |rlp, inlined| {
        if !inlined {
            nodes.push(Bytes::copy_from_slice(rlp));
        }
    })?;
    Ok(nodes)
}

/// The value stored under `key` in trie `owner`, read through the trie itself.
pub fn get<S: NodeStore>(
    store: &S,
    owner: B256,
    key: &Nibbles,
) -> Result<Option<Vec<u8>>, TrieError> {
    walk(store, owner, key, |_, _| {})
}

/// Follows `key` from the root, handing each node's RLP (and whether it is inlined
/// in its parent) to `visit`; returns the key's value if a leaf holds it.
fn walk<S: NodeStore>(
    store: &S,
    owner: B256,
    key: &Nibbles,
    mut visit: impl FnMut(&[u8], bool),
) -> Result<Option<Vec<u8>>, TrieError> {
    let corrupt = |path: &Nibbles, why: String| TrieError::Corrupt {
        owner,
        path: format!("{path:?}"),
        why,
    };
    let mut at = Nibbles::new();
    let mut inlined = false;
    while let Some(rlp) = store.node(owner, &at)? {
        visit(&rlp, inlined);
        let node =
            TrieNode::decode(&mut rlp.as_slice()).map_err(|e| corrupt(&at, e.to_string()))?;
        let next = match node {
            TrieNode::Branch(branch) if at.len() < key.len() => {
                let nibble = key.get_unchecked(at.len());
                let child = branch
                    .as_ref()
                    .children()
                    .find(|(n, _)| *n == nibble)
                    .and_then(|(_, child)| child.cloned());
                if child.is_some() {
                    at.push_unchecked(nibble);
                }
                child
            }
            TrieNode::Extension(ext) if key.slice(at.len()..).starts_with(&ext.key) => {
                at = at.join(&ext.key);
                Some(ext.child)
            }
            TrieNode::Leaf(leaf) if at.join(&leaf.key) == *key => return Ok(Some(leaf.value)),
            _ => None,
        };
        match next {
            Some(child) => inlined = !child.is_hash(),
            None => break,
        }
    }
    Ok(None)
}
