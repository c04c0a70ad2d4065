//! The TOML keys the concerns declare, read off their `Deserialize` impls, so a key
//! is written once (as a field) and an unknown key in a file is still caught.

use serde::{
    Deserialize,
    de::{self, Visitor, value::Error},
};

/// Every key some concern of [`NodeArgs`](super::NodeArgs) declares.
pub(super) fn known_keys() -> Result<Vec<&'static str>, String> {
    let mut keys = Vec::new();
    for fields in [
        fields_of::<super::ClusterArgs>(),
        fields_of::<super::DataArgs>(),
        fields_of::<super::TimingArgs>(),
        fields_of::<super::RpcArgs>(),
        fields_of::<super::SequencerArgs>(),
        fields_of::<super::FaultArgs>(),
    ] {
        keys.extend_from_slice(fields?);
    }
    Ok(keys)
}

/// The field names of struct `T`: its derived `Deserialize` hands them to the
/// deserializer, which records them and stops.
fn fields_of<'de, T: Deserialize<'de>>() -> Result<&'static [&'static str], String> {
    let mut seen = None;
    let _ = T::deserialize(Introspect(&mut seen));
    seen.ok_or_else(|| format!("{} is not a struct", std::any::type_name::<T>()))
}

struct Introspect<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for Introspect<'_> {
    type Error = Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("field names recorded"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(de::Error::custom("only structs are introspected"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        enum identifier ignored_any
    }
}
