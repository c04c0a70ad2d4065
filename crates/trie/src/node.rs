//! Nodes as an update works on them: either untouched (only the reference its
//! parent holds is known) or in memory, to be encoded and written at its path.

use alloy_primitives::{B256, keccak256};
use alloy_rlp::Decodable;
use alloy_trie::{
    Nibbles, TrieMask,
    nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode, TrieNode},
};

use crate::{NodeStore, TrieError};

/// A node at some path of a trie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Work {
    /// Unchanged and stored at its path; this is its reference in its parent.
    Stored(RlpNode),
    /// The key's remaining nibbles from this path, and the value.
    Leaf(Nibbles, Vec<u8>),
    /// A shared run of nibbles (at least one); the child is at path + key.
    Extension(Nibbles, Box<Work>),
    /// Children at path + nibble.
    Branch(Box<[Option<Work>; 16]>),
}

/// No children yet.
pub(crate) fn empty_children() -> Box<[Option<Work>; 16]> {
    Box::new(std::array::from_fn(|_| None))
}

/// Reads the node at `path` of trie `owner`, checking it against `expected` (the
/// reference its parent holds; `None` for the root, which nothing references).
pub(crate) fn load<S: NodeStore>(
    store: &S,
    owner: B256,
    path: &Nibbles,
    expected: Option<&RlpNode>,
) -> Result<Option<Work>, TrieError> {
    let corrupt = |why: String| TrieError::Corrupt {
        owner,
        path: format!("{path:?}"),
        why,
    };
    let Some(rlp) = store.node(owner, path)? else {
        return match expected {
            None => Ok(None),
            Some(_) => Err(corrupt("a node its parent references is missing".into())),
        };
    };
    if let Some(expected) = expected
        && RlpNode::from_rlp(&rlp) != *expected
    {
        return Err(corrupt(
            "the stored node does not match its parent's reference".into(),
        ));
    }
    let node = TrieNode::decode(&mut rlp.as_slice()).map_err(|e| corrupt(e.to_string()))?;
    Ok(match node {
        TrieNode::EmptyRoot => None,
        TrieNode::Leaf(leaf) => Some(Work::Leaf(leaf.key, leaf.value)),
        TrieNode::Extension(ext) => {
            Some(Work::Extension(ext.key, Box::new(Work::Stored(ext.child))))
        }
        TrieNode::Branch(branch) => {
            let mut children = empty_children();
            let mut stack = branch.stack.into_iter();
            for nibble in branch.state_mask.iter() {
                let child = stack
                    .next()
                    .ok_or_else(|| corrupt("a branch lists fewer children than its mask".into()))?;
                children[usize::from(nibble)] = Some(Work::Stored(child));
            }
            Some(Work::Branch(children))
        }
    })
}

/// Encodes `node` (whose children are already references) into `rlp`.
pub(crate) enum Encoded<'a> {
    Leaf(&'a Nibbles, &'a [u8]),
    Extension(&'a Nibbles, &'a RlpNode),
    Branch(&'a [RlpNode], TrieMask),
}

impl Encoded<'_> {
    pub(crate) fn rlp(&self, out: &mut Vec<u8>) -> RlpNode {
        out.clear();
        match self {
            Self::Leaf(key, value) => LeafNodeRef::new(key, value).rlp(out),
            Self::Extension(key, child) => ExtensionNodeRef::new(key, child).rlp(out),
            Self::Branch(stack, mask) => BranchNodeRef::new(stack, *mask).rlp(out),
        }
    }
}

/// The root hash of a trie whose root node encodes to `rlp` (the root is hashed
/// even when it is shorter than 32 bytes).
pub(crate) fn root_hash(rlp: &[u8]) -> B256 {
    keccak256(rlp)
}
