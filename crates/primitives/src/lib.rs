//! baton-primitives: the vocabulary every other crate speaks, with no I/O.
//!
//! - [`entry`]: the sequencer entries that make up the replicated log
//!   (`BlockStart`, `Transactions`, `BlockEnd`) and their versioned encoding.
//! - [`genesis`]: geth-style `genesis.json`, the chain spec derived from it and the
//!   genesis header.
//! - [`block`]: the open block and sealed blocks (alloy headers, hash = keccak(rlp)).
//! - [`member`]: node ids and what a member publishes about itself (peer id,
//!   p2p address, RPC URL).
//! - [`codec`]: the one bounded binary codec used on disk and on the wire.
//! - [`clock`]: wall-clock milliseconds, as blocks are stamped.

pub mod block;
pub mod clock;
pub mod codec;
pub mod entry;
pub mod genesis;
pub mod member;

pub use block::{OpenBlock, SealedBlock};
pub use entry::{BlockEnd, BlockStart, SequencerEntry, TxBatch};
pub use genesis::{
    Alloc, ChainSpec, DevAccount, Genesis, GenesisAccount, GenesisError, dev_accounts,
    mnemonic_accounts,
};
pub use member::{Member, NodeId};
