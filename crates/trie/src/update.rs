//! Applying a block's changed keys to a trie: the nodes on their paths are loaded,
//! rebuilt in memory, then encoded bottom-up and written back at their paths.
//! Subtrees no change reaches are never read: they keep their stored reference.

use std::collections::BTreeMap;

use alloy_primitives::B256;
use alloy_trie::{EMPTY_ROOT_HASH, Nibbles, TrieMask, nodes::RlpNode};

use crate::{
    NodeStore, TrieError, TrieWrites,
    node::{self, Encoded, Work, empty_children},
};

/// A changed key (64 nibbles: a hashed address or slot) and its new leaf value;
/// `None` deletes it.
pub type Change = (Nibbles, Option<Vec<u8>>);

/// Applies `changes` (sorted by key, each key once) to trie `owner` in `store`;
/// returns the new root and the nodes to write and delete. Nothing is written here.
pub fn update<S: NodeStore>(
    store: &S,
    owner: B256,
    changes: &[Change],
) -> Result<TrieWrites, TrieError> {
    debug_assert!(
        changes.windows(2).all(|w| w[0].0 < w[1].0),
        "changes are sorted by key, each key once"
    );
    debug_assert!(
        changes.iter().all(|(k, _)| k.len() == 64),
        "keys are 32 bytes"
    );
    let root = node::load(store, owner, &Nibbles::new(), None)?;
    let mut updater = Updater {
        store,
        owner,
        writes: BTreeMap::new(),
    };
    if changes.is_empty() {
        return Ok(TrieWrites {
            root: root_of(store, owner)?,
            nodes: BTreeMap::new(),
        });
    }
    if root.is_some() {
        updater.replaced(Nibbles::new());
    }
    let root = match updater.apply(Nibbles::new(), root, changes)? {
        None => EMPTY_ROOT_HASH,
        Some(node) => {
            let mut buf = Vec::with_capacity(544);
            updater.commit(Nibbles::new(), node, &mut buf);
            node::root_hash(&buf)
        }
    };
    Ok(TrieWrites {
        root,
        nodes: updater.writes,
    })
}

/// The root hash of trie `owner` as stored.
pub(crate) fn root_of<S: NodeStore>(store: &S, owner: B256) -> Result<B256, TrieError> {
    Ok(store
        .node(owner, &Nibbles::new())?
        .map_or(EMPTY_ROOT_HASH, |rlp| node::root_hash(&rlp)))
}

struct Updater<'a, S> {
    store: &'a S,
    owner: B256,
    /// Nodes to write (`Some`) and delete (`None`), by path.
    writes: BTreeMap<Nibbles, Option<Vec<u8>>>,
}

impl<S: NodeStore> Updater<'_, S> {
    fn load(&self, path: &Nibbles, expected: &RlpNode) -> Result<Work, TrieError> {
        node::load(self.store, self.owner, path, Some(expected))?.ok_or_else(|| {
            TrieError::Corrupt {
                owner: self.owner,
                path: format!("{path:?}"),
                why: "a referenced node is empty".into(),
            }
        })
    }

    /// The stored node at `path` goes; whatever replaces it is written at commit.
    fn replaced(&mut self, path: Nibbles) {
        self.writes.insert(path, None);
    }

    /// The node at `at` after `changes` (all under `at`) are applied to `old`.
    fn apply(
        &mut self,
        at: Nibbles,
        old: Option<Work>,
        changes: &[Change],
    ) -> Result<Option<Work>, TrieError> {
        if changes.is_empty() {
            return Ok(old);
        }
        let old = match old {
            Some(Work::Stored(reference)) => {
                let loaded = self.load(&at, &reference)?;
                self.replaced(at);
                Some(loaded)
            }
            other => other,
        };
        Ok(match old {
            None => build(at.len(), &inserts(changes, None)),
            Some(Work::Leaf(rest, value)) => {
                build(at.len(), &inserts(changes, Some((at.join(&rest), value))))
            }
            Some(Work::Extension(key, child)) => {
                let child_at = at.join(&key);
                if changes.iter().all(|(k, _)| k.starts_with(&child_at)) {
                    let child = self.apply(child_at, Some(*child), changes)?;
                    extend(key, child)
                } else {
                    // The changes leave the shared run: see it as a branch at `at`
                    // with one child, the rest of the run.
                    let mut children = empty_children();
                    children[usize::from(key.get_unchecked(0))] = Some(if key.len() == 1 {
                        *child
                    } else {
                        Work::Extension(key.slice(1..), child)
                    });
                    self.apply_branch(at, children, changes)?
                }
            }
            Some(Work::Branch(children)) => self.apply_branch(at, children, changes)?,
            Some(Work::Stored(_)) => unreachable!("a stored node was loaded above"),
        })
    }

    fn apply_branch(
        &mut self,
        at: Nibbles,
        mut children: Box<[Option<Work>; 16]>,
        changes: &[Change],
    ) -> Result<Option<Work>, TrieError> {
        let depth = at.len();
        let mut rest = changes;
        while let Some((first, _)) = rest.first() {
            let nibble = first.get_unchecked(depth);
            let run = rest.partition_point(|(k, _)| k.get_unchecked(depth) == nibble);
            let (these, more) = rest.split_at(run);
            let mut child_at = at;
            child_at.push_unchecked(nibble);
            let slot = &mut children[usize::from(nibble)];
            *slot = self.apply(child_at, slot.take(), these)?;
            rest = more;
        }
        self.collapse(at, children)
    }

    /// A branch keeps two or more children; with one it becomes part of a run.
    fn collapse(
        &mut self,
        at: Nibbles,
        mut children: Box<[Option<Work>; 16]>,
    ) -> Result<Option<Work>, TrieError> {
        let mut present = (0u8..16).filter(|n| children[usize::from(*n)].is_some());
        let Some(only) = present.next() else {
            return Ok(None);
        };
        if present.next().is_some() {
            return Ok(Some(Work::Branch(children)));
        }
        let child = children[usize::from(only)]
            .take()
            .unwrap_or_else(|| unreachable!("nibble {only} is present"));
        let mut child_at = at;
        child_at.push_unchecked(only);
        let prefix = Nibbles::from_nibbles_unchecked([only]);
        let child = match child {
            Work::Stored(reference) => match self.load(&child_at, &reference)? {
                // A branch stays where it is; only the parent becomes a run to it.
                Work::Branch(_) => {
                    return Ok(Some(Work::Extension(
                        prefix,
                        Box::new(Work::Stored(reference)),
                    )));
                }
                absorbed => {
                    self.replaced(child_at);
                    absorbed
                }
            },
            other => other,
        };
        Ok(extend(prefix, Some(child)))
    }

    /// Encodes `node` at `at` (children first), records the writes, and returns
    /// its reference.
    fn commit(&mut self, at: Nibbles, node: Work, buf: &mut Vec<u8>) -> RlpNode {
        match node {
            Work::Stored(reference) => reference,
            Work::Leaf(key, value) => self.write(at, &Encoded::Leaf(&key, &value), buf),
            Work::Extension(key, child) => {
                let child = self.commit(at.join(&key), *child, buf);
                self.write(at, &Encoded::Extension(&key, &child), buf)
            }
            Work::Branch(children) => {
                let mut stack = Vec::with_capacity(16);
                let mut mask = TrieMask::default();
                for (nibble, child) in (0u8..).zip(*children) {
                    if let Some(child) = child {
                        let mut child_at = at;
                        child_at.push_unchecked(nibble);
                        stack.push(self.commit(child_at, child, buf));
                        mask.set_bit(nibble);
                    }
                }
                debug_assert!(stack.len() >= 2, "a stored branch has two children or more");
                self.write(at, &Encoded::Branch(&stack, mask), buf)
            }
        }
    }

    fn write(&mut self, at: Nibbles, node: &Encoded<'_>, buf: &mut Vec<u8>) -> RlpNode {
        let reference = node.rlp(buf);
        self.writes.insert(at, Some(buf.clone()));
        reference
    }
}

/// `child` behind a run of `key`: runs and leaves absorb the run; a branch gets it
/// as an extension.
fn extend(key: Nibbles, child: Option<Work>) -> Option<Work> {
    Some(match child? {
        Work::Leaf(rest, value) => Work::Leaf(key.join(&rest), value),
        Work::Extension(more, grandchild) => Work::Extension(key.join(&more), grandchild),
        branch => Work::Extension(key, Box::new(branch)),
    })
}

/// The keys that stay, with values: the inserted ones, and `old` unless a change
/// names it; in key order.
fn inserts(changes: &[Change], old: Option<(Nibbles, Vec<u8>)>) -> Vec<(Nibbles, Vec<u8>)> {
    let mut out: Vec<(Nibbles, Vec<u8>)> = changes
        .iter()
        .filter_map(|(key, value)| value.clone().map(|v| (*key, v)))
        .collect();
    if let Some((key, value)) = old
        && changes.binary_search_by(|(k, _)| k.cmp(&key)).is_err()
    {
        let at = out.partition_point(|(k, _)| *k < key);
        out.insert(at, (key, value));
    }
    out
}

/// A fresh subtree of `entries` (sorted, distinct, sharing their first `depth`
/// nibbles), as the node at depth `depth`.
fn build(depth: usize, entries: &[(Nibbles, Vec<u8>)]) -> Option<Work> {
    match entries {
        [] => None,
        [(key, value)] => Some(Work::Leaf(key.slice(depth..), value.clone())),
        [(first, _), .., (last, _)] => {
            // Sorted: the first and last share what all share.
            let common = first.common_prefix_length(last);
            debug_assert!(common >= depth && common < first.len());
            let mut children = empty_children();
            let mut rest = entries;
            while let Some((key, _)) = rest.first() {
                let nibble = key.get_unchecked(common);
                let run = rest.partition_point(|(k, _)| k.get_unchecked(common) == nibble);
                children[usize::from(nibble)] = build(common + 1, &rest[..run]);
                rest = &rest[run..];
            }
            let branch = Work::Branch(children);
            Some(if common > depth {
                Work::Extension(first.slice(depth..common), Box::new(branch))
            } else {
                branch
            })
        }
    }
}
