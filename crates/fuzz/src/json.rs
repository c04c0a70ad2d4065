//! JSON-RPC params built from bytes: each byte steers the next choice, so the
//! values are shaped like what methods take (quantities, addresses, hashes, block
//! tags, call and filter objects) and a fuzzer's mutations reach the handlers
//! instead of failing in the JSON parser.

use serde_json::{Map, Value, json};

/// Keys the methods' objects use (calls, filters, overrides, simulations, tracers).
const KEYS: &[&str] = &[
    "from",
    "to",
    "gas",
    "gasPrice",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "value",
    "data",
    "input",
    "nonce",
    "chainId",
    "type",
    "accessList",
    "authorizationList",
    "fromBlock",
    "toBlock",
    "blockHash",
    "address",
    "topics",
    "storageKeys",
    "balance",
    "code",
    "state",
    "stateDiff",
    "movePrecompileToAddress",
    "blockStateCalls",
    "blockOverrides",
    "stateOverrides",
    "calls",
    "validation",
    "traceTransfers",
    "returnFullTransactions",
    "number",
    "time",
    "baseFeePerGas",
    "feeRecipient",
    "prevRandao",
    "gasLimit",
    "tracer",
    "tracerConfig",
    "onlyTopCall",
    "withLog",
    "timeout",
    "disableStorage",
    "enableMemory",
    "requireCanonical",
    "blockNumber",
];

const TAGS: &[&str] = &[
    "latest",
    "pending",
    "earliest",
    "safe",
    "finalized",
    "callTracer",
    "prestateTracer",
    "newHeads",
    "logs",
    "newPendingTransactions",
    "newFlashblocks",
    "pendingLogs",
];

/// Deepest nesting of arrays and objects.
const MAX_DEPTH: u8 = 4;

/// A cursor over the bytes; past their end every choice reads zero.
pub(crate) struct Params<'a> {
    bytes: &'a [u8],
}

impl<'a> Params<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The params array: up to four values.
    pub(crate) fn build(mut self) -> Value {
        let len = self.byte() % 5;
        Value::Array((0..len).map(|_| self.value(0)).collect())
    }

    fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.bytes.split_first() else {
            return 0;
        };
        self.bytes = rest;
        first
    }

    fn take(&mut self, len: usize) -> Vec<u8> {
        let len = len.min(self.bytes.len());
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        taken.to_vec()
    }

    fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        let len = usize::from(self.byte() % 9);
        let taken = self.take(len);
        bytes[8 - taken.len()..].copy_from_slice(&taken);
        u64::from_be_bytes(bytes)
    }

    fn hex(&mut self, len: usize) -> Value {
        let bytes = self.take(len);
        json!(format!("0x{}", alloy_primitives::hex::encode(bytes)))
    }

    fn value(&mut self, depth: u8) -> Value {
        match self.byte() % 14 {
            0 => Value::Null,
            1 => json!(self.byte().is_multiple_of(2)),
            2 => json!(self.u64()),
            3 => json!(format!("{:#x}", self.u64())),
            4 => {
                let len = usize::from(self.byte() % 80);
                self.hex(len)
            }
            5 => self.hex(20),
            6 => self.hex(32),
            7 => json!(TAGS[usize::from(self.byte()) % TAGS.len()]),
            8 => {
                let len = usize::from(self.byte() % 40);
                json!(String::from_utf8_lossy(&self.take(len)))
            }
            9 => json!(format!("0x{}", "f".repeat(usize::from(self.byte() % 80)))),
            10 => json!(-((self.u64() >> 1) as i64)),
            11 => json!(f64::from(self.byte()) / 3.0),
            12 if depth < MAX_DEPTH => {
                let len = self.byte() % 5;
                Value::Array((0..len).map(|_| self.value(depth + 1)).collect())
            }
            _ if depth < MAX_DEPTH => {
                let len = self.byte() % 7;
                let mut object = Map::new();
                for _ in 0..len {
                    let key = KEYS[usize::from(self.byte()) % KEYS.len()];
                    object.insert(key.to_string(), self.value(depth + 1));
                }
                Value::Object(object)
            }
            _ => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_build_the_same_params_and_no_bytes_build_none() {
        let bytes = [3, 7, 1, 2, 3, 13, 2, 0, 5, 1, 2, 3];
        assert_eq!(Params::new(&bytes).build(), Params::new(&bytes).build());
        assert_eq!(Params::new(&[]).build(), json!([]));
        assert_eq!(Params::new(&[1, 3, 1, 0xff]).build(), json!(["0xff"]));
    }
}
