//! [`Blob`]: a byte string that crosses the wire as one block.
//!
//! serde treats `Vec<u8>` as a sequence of `u8`, so bincode encodes and decodes it one byte
//! at a time through the visitor; for a payload of megabytes that per-byte loop costs more
//! than TLS and the network together. A `Blob` goes through `serialize_bytes` instead: one
//! length and one copy. With the codec [`Context`](crate::Context) uses, both forms produce
//! the same bytes on the wire, so a message can switch a `Vec<u8>` field to `Blob` without a
//! protocol-version change.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ops::{Deref, DerefMut};

/// A byte string serialised as one blob. Derefs to `Vec<u8>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Blob(pub Vec<u8>);

impl Blob {
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Blob(v)
    }
}

impl From<Blob> for Vec<u8> {
    fn from(b: Blob) -> Self {
        b.0
    }
}

impl Deref for Blob {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Blob {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
            // Self-describing formats (JSON in the store, for example) write bytes as a
            // sequence of numbers.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                // The hint comes from the input: cap what it may reserve up front.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Blob(out))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bincode::Options;
    use proptest::prelude::*;

    /// The codec `Context` uses (without its size limit).
    fn codec() -> impl Options {
        bincode::DefaultOptions::new()
    }

    proptest! {
        #[test]
        fn blob_round_trips_and_matches_the_vec_encoding(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
            let blob = Blob(bytes.clone());
            let encoded = codec().serialize(&blob).unwrap();
            prop_assert_eq!(&encoded, &codec().serialize(&bytes).unwrap(), "same wire bytes as Vec<u8>");
            let back: Blob = codec().deserialize(&encoded).unwrap();
            prop_assert_eq!(&back.0, &bytes);
            let as_vec: Vec<u8> = codec().deserialize(&encoded).unwrap();
            prop_assert_eq!(as_vec, bytes);
        }

        #[test]
        fn blob_survives_json(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let json = serde_json::to_string(&Blob(bytes.clone())).unwrap();
            let back: Blob = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back.0, bytes);
        }
    }

    #[test]
    fn a_truncated_blob_is_an_error() {
        let encoded = codec().serialize(&Blob(vec![7; 100])).unwrap();
        let cut = &encoded[..encoded.len() - 1];
        assert!(codec().deserialize::<Blob>(cut).is_err());
    }
}
