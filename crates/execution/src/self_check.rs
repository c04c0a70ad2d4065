//! The startup self-check behind DESIGN invariant 5: a node whose storage or
//! executor cannot reproduce its own head must not lead.

use alloy_primitives::{Address, B256, keccak256};
use alloy_trie::Nibbles;
use baton_storage::Store;

use crate::{BlockBuilder, commit::account_leaf, start_on};

/// Accounts from the start of the state whose records are checked against the trie.
const SAMPLED_ACCOUNTS: usize = 64;

/// Reads the head block, checks that its header hashes to its recorded hash, then
/// seals an empty block on top of the head state and checks that the state root is
/// unchanged (an empty block changes no account), and that the accounts the head
/// block changed, and a sample of the state, read the same in the state tables as
/// through the trie. That needs the store's blocks, state and trie readable and the
/// executor and trie code working. Returns why not, if not.
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
    let start = start_on(
        &head,
        (head.header.timestamp + 1) * 1000,
        head.header.gas_limit,
        head.header.beneficiary,
    );
    let sealed = BlockBuilder::new(store.clone(), chain_id, start)
        .seal(&head.header)
        .map_err(|e| format!("sealing an empty block on the head state: {e}"))?;
    if sealed.block.header.state_root != head.header.state_root {
        return Err(format!(
            "the head state's root is {}, the head block says {}",
            sealed.block.header.state_root, head.header.state_root
        ));
    }
    let changed = store
        .changed_keys(number)
        .map_err(|e| e.to_string())?
        .map(|keys| keys.accounts)
        .unwrap_or_default();
    let sample = store
        .first_accounts(SAMPLED_ACCOUNTS)
        .map_err(|e| e.to_string())?;
    for address in changed.into_iter().chain(sample) {
        check_account(store, address)?;
    }
    Ok(())
}

/// The account's record in the state tables is the leaf the trie holds for it.
fn check_account(store: &Store, address: Address) -> Result<(), String> {
    let record = store.account(address).map_err(|e| e.to_string())?;
    let leaf = baton_trie::get(store, B256::ZERO, &Nibbles::unpack(keccak256(address)))
        .map_err(|e| e.to_string())?;
    if record.as_ref().map(account_leaf) != leaf {
        return Err(format!(
            "account {address} in the state tables disagrees with the trie of the state root"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use baton_primitives::ChainSpec;
    use baton_storage::AccountRecord;
    use baton_trie::TrieWrites;

    use super::*;
    use crate::write_genesis;

    #[test]
    fn a_fresh_chain_passes_and_a_tampered_state_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let spec = ChainSpec::dev();
        write_genesis(&store, &spec).expect("genesis");
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

    #[test]
    fn a_chain_whose_trie_lost_its_root_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let spec = ChainSpec::dev();
        write_genesis(&store, &spec).expect("genesis");

        let mut write = store.chain_write();
        let mut lost = TrieWrites::default();
        lost.nodes.insert(Nibbles::new(), None);
        write.put_trie(&B256::ZERO, &lost);
        write.commit().expect("commit");
        let why = self_check(&store, spec.chain_id).expect_err("no trie");
        assert!(why.contains("root"), "{why}");
    }
}
