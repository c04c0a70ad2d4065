//! openraft's type configuration for baton.

use baton_primitives::{Member, SequencerEntry};

openraft::declare_raft_types!(
    /// Raft types: the log carries [`SequencerEntry`]s, members are [`Member`]s.
    pub TypeConfig:
        D = SequencerEntry,
        R = (),
        Node = Member,
);

/// A snapshot as it moves between state machine and network: a directory.
pub(crate) type SnapshotData = crate::snapshot::SnapshotDir;

pub(crate) type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub(crate) type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub(crate) type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub(crate) type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub(crate) type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;
