//! The binary codec for everything baton stores or sends between members.
//!
//! bincode with an explicit size limit: a length prefix from a corrupt file or a
//! hostile peer can never make us allocate more than [`MAX_DECODE_BYTES`].

use bincode::Options;
use serde::{Serialize, de::DeserializeOwned};

/// Upper bound on one decoded value (a snapshot is the largest thing we decode).
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("codec: {0}")]
pub struct CodecError(#[from] bincode::Error);

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_DECODE_BYTES)
        .with_fixint_encoding()
        .reject_trailing_bytes()
}

/// Encodes `value` in baton's binary format.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(options().serialize(value)?)
}

/// Decodes a value written by [`encode`]; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(options().deserialize(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_trailing_bytes() {
        let bytes = encode(&(7u64, "seven".to_string())).expect("encode");
        let back: (u64, String) = decode(&bytes).expect("decode");
        assert_eq!(back, (7, "seven".to_string()));

        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode::<(u64, String)>(&longer).is_err());
    }

    #[test]
    fn huge_length_prefix_is_an_error_not_an_allocation() {
        // A Vec<u8> claiming u64::MAX elements.
        let bytes = u64::MAX.to_le_bytes();
        assert!(decode::<Vec<u8>>(&bytes).is_err());
    }
}
