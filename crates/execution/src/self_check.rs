//! The startup self-check behind DESIGN invariant 5: a node whose storage or
//! executor cannot reproduce its own head must not lead.

use baton_primitives::BlockStart;
use baton_storage::Store;

use crate::{BlockBuilder, next_base_fee};

/// Reads the head block, checks that its header hashes to its recorded hash, then
/// seals an empty block on top of the head state and checks that the state root is
/// unchanged (an empty block changes no account). Both need the store's blocks and
/// state readable and the executor and trie code working. Returns why not, if not.
pub fn self_check(store: &Store, chain_id: u64) -> Result<(), String> {
    let (number, hash) = store
        .head()
        .map_err(|e| e.to_string())?
        .ok_or("the store has no head block")?;
    let head = store
        .block(number)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("head block {number} is missing"))?;
    if head.hash != hash || head.header.hash_slow() != hash {
        return Err(format!("head block {number} does not hash to {hash}"));
    }
    let start = BlockStart {
        number: number + 1,
        timestamp_ms: (head.header.timestamp + 1) * 1000,
        parent_hash: hash,
        base_fee: next_base_fee(&head.header),
        gas_limit: head.header.gas_limit,
        coinbase: head.header.beneficiary,
    };
    let sealed = BlockBuilder::new(store.clone(), chain_id, start)
        .seal(&head.header)
        .map_err(|e| format!("sealing an empty block on the head state: {e}"))?;
    if sealed.block.header.state_root != head.header.state_root {
        return Err(format!(
            "the head state's root is {}, the head block says {}",
            sealed.block.header.state_root, head.header.state_root
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy_primitives::Address;
    use baton_primitives::ChainSpec;
    use baton_storage::AccountRecord;

    use super::*;
    use crate::write_genesis;

    #[test]
    fn a_fresh_chain_passes_and_a_tampered_state_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let spec = ChainSpec::dev();
        let mut write = store.chain_write();
        write_genesis(&mut write, &spec).expect("genesis");
        write.commit().expect("commit");
        assert_eq!(self_check(&store, spec.chain_id), Ok(()));

        // An account the head block does not account for: the roots disagree.
        let mut write = store.chain_write();
        let record = AccountRecord {
            nonce: 1,
            ..Default::default()
        };
        write
            .put_account(Address::repeat_byte(0x42), Some(&record))
            .expect("put");
        write.commit().expect("commit");
        let why = self_check(&store, spec.chain_id).expect_err("tampered");
        assert!(why.contains("root"), "{why}");
    }
}
