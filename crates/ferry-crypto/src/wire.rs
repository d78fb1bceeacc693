//! Versioned, length-checked wire formats for keys and ciphertexts.
//!
//! Everything here parses bytes that came from another party, so every length is checked
//! against the bytes actually present and against a fixed limit before anything is allocated,
//! and every failure is a [`WireError`], never a panic.
//!
//! Public key: `"FYPK" | version u16 | scheme u8 | key_bits u32 | fields...`, each field an
//! unsigned big-endian integer prefixed by its byte length (u32). All integers are big-endian.
//!
//! Ciphertexts travel in a [`CiphertextBatch`]: fixed-width big-endian elements, tagged with the
//! scheme and the fingerprint of the key they belong to.

use rug::Integer;
use rug::integer::Order;
use serde::{Deserialize, Serialize};

/// Current version of the key and ciphertext formats.
pub const WIRE_VERSION: u16 = 1;
/// Largest integer accepted in a key field: enough for 8192-bit keys (ciphertext modulus n²).
pub const MAX_FIELD_BYTES: usize = 2 * 8192 / 8;
/// Largest ciphertext batch accepted in one message (elements). Callers split larger batches.
pub const MAX_BATCH_ELEMENTS: usize = 1 << 24;

const KEY_MAGIC: &[u8; 4] = b"FYPK";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("input truncated: needed {needed} more bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("not a Ferry key (bad magic bytes)")]
    BadMagic,
    #[error("format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("expected a {expected} key or ciphertext, found scheme id {found}")]
    WrongScheme { expected: &'static str, found: u8 },
    #[error("ciphertexts were made under another key (fingerprint {found}, expected {expected})")]
    KeyMismatch { expected: String, found: String },
    #[error("{what} is {size} bytes, above the limit of {limit}")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("{what} has {found} bytes, expected {expected}")]
    BadLength {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("ciphertext {index} is not a valid element of the ciphertext space")]
    InvalidCiphertext { index: usize },
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
}

/// A batch of ciphertexts in wire form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiphertextBatch {
    pub version: u16,
    pub scheme: u8,
    pub key_fingerprint: [u8; 8],
    /// Bytes per element (fixed width, big-endian, left-padded with zeros).
    pub element_bytes: u32,
    pub data: Vec<u8>,
}

impl CiphertextBatch {
    /// Number of ciphertexts, after the batch passed [`CiphertextBatch::check_shape`].
    pub fn len(&self) -> usize {
        if self.element_bytes == 0 {
            0
        } else {
            self.data.len() / self.element_bytes as usize
        }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Wire size in bytes (payload only).
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn from_integers<'a>(
        scheme: crate::he::SchemeKind,
        fingerprint: [u8; 8],
        element_bytes: usize,
        values: impl ExactSizeIterator<Item = Integer> + 'a,
    ) -> CiphertextBatch {
        let mut data = vec![0u8; values.len() * element_bytes];
        for (chunk, v) in data.chunks_exact_mut(element_bytes).zip(values) {
            write_fixed_be(&v, chunk);
        }
        CiphertextBatch {
            version: WIRE_VERSION,
            scheme: scheme.wire_id(),
            key_fingerprint: fingerprint,
            element_bytes: element_bytes as u32,
            data,
        }
    }

    /// Validates version, scheme, key and length before any element is parsed.
    pub(crate) fn check_shape(
        &self,
        scheme: crate::he::SchemeKind,
        fingerprint: [u8; 8],
        element_bytes: usize,
    ) -> Result<usize, WireError> {
        if self.version != WIRE_VERSION {
            return Err(WireError::UnsupportedVersion {
                found: self.version,
                supported: WIRE_VERSION,
            });
        }
        if self.scheme != scheme.wire_id() {
            return Err(WireError::WrongScheme {
                expected: scheme.name(),
                found: self.scheme,
            });
        }
        if self.key_fingerprint != fingerprint {
            return Err(WireError::KeyMismatch {
                expected: hex(&fingerprint),
                found: hex(&self.key_fingerprint),
            });
        }
        if self.element_bytes as usize != element_bytes {
            return Err(WireError::BadLength {
                what: "ciphertext element",
                expected: element_bytes,
                found: self.element_bytes as usize,
            });
        }
        if !self.data.len().is_multiple_of(element_bytes) {
            return Err(WireError::Truncated {
                needed: element_bytes - self.data.len() % element_bytes,
                available: 0,
            });
        }
        let count = self.data.len() / element_bytes;
        if count > MAX_BATCH_ELEMENTS {
            return Err(WireError::TooLarge {
                what: "ciphertext batch",
                size: self.data.len(),
                limit: MAX_BATCH_ELEMENTS * element_bytes,
            });
        }
        Ok(count)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `v` (non-negative, fits) into `out` as fixed-width big-endian.
pub(crate) fn write_fixed_be(v: &Integer, out: &mut [u8]) {
    let needed = v.significant_digits::<u8>();
    assert!(
        needed <= out.len(),
        "value does not fit its fixed-width field"
    );
    let start = out.len() - needed;
    out[..start].fill(0);
    v.write_digits(&mut out[start..], Order::Msf);
}

/// Builder for the key format.
pub(crate) struct KeyWriter {
    buf: Vec<u8>,
}

impl KeyWriter {
    pub(crate) fn new(scheme: crate::he::SchemeKind, key_bits: u32) -> Self {
        let mut buf = Vec::with_capacity(1024);
        buf.extend_from_slice(KEY_MAGIC);
        buf.extend_from_slice(&WIRE_VERSION.to_be_bytes());
        buf.push(scheme.wire_id());
        buf.extend_from_slice(&key_bits.to_be_bytes());
        KeyWriter { buf }
    }

    pub(crate) fn integer(mut self, v: &Integer) -> Self {
        let bytes = v.to_digits::<u8>(Order::Msf);
        self.buf
            .extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(&bytes);
        self
    }

    pub(crate) fn u32(mut self, v: u32) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Parser for the key format.
pub(crate) struct KeyReader<'a> {
    rest: &'a [u8],
    pub(crate) key_bits: u32,
}

impl<'a> KeyReader<'a> {
    pub(crate) fn new(bytes: &'a [u8], scheme: crate::he::SchemeKind) -> Result<Self, WireError> {
        let mut r = KeyReader {
            rest: bytes,
            key_bits: 0,
        };
        if r.take(4)? != KEY_MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = u16::from_be_bytes(r.take(2)?.try_into().expect("2 bytes"));
        if version != WIRE_VERSION {
            return Err(WireError::UnsupportedVersion {
                found: version,
                supported: WIRE_VERSION,
            });
        }
        let found = r.take(1)?[0];
        if found != scheme.wire_id() {
            return Err(WireError::WrongScheme {
                expected: scheme.name(),
                found,
            });
        }
        r.key_bits = r.u32()?;
        Ok(r)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.rest.len() < n {
            return Err(WireError::Truncated {
                needed: n,
                available: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn integer(&mut self, what: &'static str) -> Result<Integer, WireError> {
        let len = self.u32()? as usize;
        if len > MAX_FIELD_BYTES {
            return Err(WireError::TooLarge {
                what,
                size: len,
                limit: MAX_FIELD_BYTES,
            });
        }
        Ok(Integer::from_digits(self.take(len)?, Order::Msf))
    }

    pub(crate) fn finish(self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes(self.rest.len()))
        }
    }
}

/// First 8 bytes of SHA-256 over a key's wire form.
pub(crate) fn fingerprint(key_bytes: &[u8]) -> [u8; 8] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key_bytes);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Implements serde for a public key type through its checked byte form.
macro_rules! serde_via_bytes {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.to_bytes())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let bytes: Vec<u8> = serde::Deserialize::deserialize(d)?;
                <$ty>::from_bytes(&bytes).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_via_bytes;
