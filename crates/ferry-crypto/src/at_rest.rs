//! Encryption at rest with SM4-GCM (GB/T 32907 SM4 in NIST SP 800-38D Galois/Counter Mode,
//! the AEAD of RFC 8998), streamed in records so that a file of any size is written and read
//! without holding it in memory.
//!
//! # Format (version 1)
//!
//! ```text
//! header  = MAGIC (8 bytes, "FRYSM4G1") ‖ record size (u32, big endian) ‖ salt (16 bytes)
//! record  = SM4-GCM ciphertext of up to RECORD_BYTES plaintext bytes ‖ tag (16 bytes)
//! file    = header ‖ record 0 ‖ record 1 ‖ … ‖ final record
//! ```
//!
//! * **Key per file.** Each file has a fresh random salt; its SM4 key is the first 16 bytes
//!   of `SM3(FILE_KEY_DOMAIN ‖ master key ‖ salt)`. Nonces therefore only have to be unique
//!   within a file, and they are by construction (next point), so no nonce is ever reused
//!   under one key however many files a node writes (the birthday bound is on 128-bit salts).
//! * **Nonce per record** ([`record_nonce`]): 3 zero bytes ‖ the record index (u64, big
//!   endian) ‖ a final flag (1 for the last record, 0 otherwise) — the STREAM construction
//!   (Hoang, Reyhanitabar, Rogaway, Vizár 2015) that Tink and age use. Reordering records
//!   changes their index, dropping the end leaves a last record without the final flag, and
//!   appending after the final record is refused: every such change fails authentication.
//! * **Associated data** is the header, so a record cannot be moved into another file (it
//!   would be under another key anyway) and the record size cannot be changed.
//! * Every record except the last holds exactly `RECORD_BYTES` plaintext bytes; the last holds
//!   0 to `RECORD_BYTES` (0 only for an empty file), so an empty file is one header and one
//!   16-byte tag.
//!
//! Errors say which record failed and why; the caller adds the file's name.

use crate::gm::sm3;
use aes_gcm::aead::consts::U12;
use aes_gcm::{AeadInOut, KeyInit};
use std::io::{self, Read, Write};

/// First bytes of an encrypted file: what it is and the format version.
pub const MAGIC: [u8; 8] = *b"FRYSM4G1";
/// Plaintext bytes per record: large enough that the 16-byte tag costs 0.02 %, small enough
/// that a reader holds one record (64 KiB) in memory whatever the file's size.
pub const RECORD_BYTES: usize = 64 * 1024;
/// Bytes of the random salt from which a file's key is derived.
pub const SALT_BYTES: usize = 16;
/// Bytes of a GCM tag (the full 128 bits; never truncated).
pub const TAG_BYTES: usize = 16;
/// Bytes of the header: magic, record size, salt.
pub const HEADER_BYTES: usize = MAGIC.len() + 4 + SALT_BYTES;
/// Bytes of an SM4 key (the master key and each file key).
pub const KEY_BYTES: usize = 16;
/// Domain separation of the file-key derivation, so that the master key is used for nothing
/// else even if SM3 of the same bytes is computed elsewhere.
pub const FILE_KEY_DOMAIN: &[u8] = b"ferry/at-rest/v1/sm4-gcm-file-key\0";

/// SM4-GCM with a 96-bit nonce (the RFC 8998 parameters).
pub type Sm4Gcm = aes_gcm::AesGcm<sm4::Sm4, U12>;

/// The node's master key for encryption at rest. `Debug` never shows it.
#[derive(Clone)]
pub struct AtRestKey([u8; KEY_BYTES]);

impl std::fmt::Debug for AtRestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AtRestKey(..)")
    }
}

impl AtRestKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        AtRestKey(bytes)
    }

    /// The key bytes: store them like any private key (mode 0600).
    pub fn to_bytes(&self) -> [u8; KEY_BYTES] {
        self.0
    }

    /// The SM4-GCM instance of the file whose salt is `salt`.
    fn file_cipher(&self, salt: &[u8; SALT_BYTES]) -> Sm4Gcm {
        let mut input = Vec::with_capacity(FILE_KEY_DOMAIN.len() + KEY_BYTES + SALT_BYTES);
        input.extend_from_slice(FILE_KEY_DOMAIN);
        input.extend_from_slice(&self.0);
        input.extend_from_slice(salt);
        let digest = sm3(&input);
        let mut key = [0u8; KEY_BYTES];
        key.copy_from_slice(&digest[..KEY_BYTES]);
        Sm4Gcm::new(&key.into())
    }
}

/// The nonce of record `index`: 3 zero bytes, the index (u64, big endian), the final flag.
pub fn record_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// Whether `prefix` (the first bytes of a file) starts like an encrypted file.
pub fn is_encrypted(prefix: &[u8]) -> bool {
    prefix.len() >= MAGIC.len() && prefix[..MAGIC.len()] == MAGIC
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Encrypts everything written to it into `inner`. Call [`EncryptingWriter::finish`]: it
/// writes the final record, and a file without one is refused when read (truncated).
pub struct EncryptingWriter<W: Write> {
    inner: W,
    cipher: Sm4Gcm,
    header: [u8; HEADER_BYTES],
    /// Plaintext of the record being filled (at most `RECORD_BYTES`).
    pending: Vec<u8>,
    index: u64,
}

impl<W: Write> EncryptingWriter<W> {
    /// Writes the header with a fresh salt from `rng`.
    pub fn new<R: rand::CryptoRng + ?Sized>(
        mut inner: W,
        key: &AtRestKey,
        rng: &mut R,
    ) -> io::Result<Self> {
        let mut salt = [0u8; SALT_BYTES];
        rng.fill_bytes(&mut salt);
        let mut header = [0u8; HEADER_BYTES];
        header[..MAGIC.len()].copy_from_slice(&MAGIC);
        header[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&(RECORD_BYTES as u32).to_be_bytes());
        header[MAGIC.len() + 4..].copy_from_slice(&salt);
        inner.write_all(&header)?;
        Ok(EncryptingWriter {
            inner,
            cipher: key.file_cipher(&salt),
            header,
            pending: Vec::with_capacity(RECORD_BYTES),
            index: 0,
        })
    }

    fn seal_pending(&mut self, last: bool) -> io::Result<()> {
        let nonce = record_nonce(self.index, last);
        let tag = self
            .cipher
            .encrypt_inout_detached(
                &nonce.into(),
                &self.header,
                self.pending.as_mut_slice().into(),
            )
            .map_err(|_| invalid(format!("record {}: SM4-GCM refused to encrypt", self.index)))?;
        self.inner.write_all(&self.pending)?;
        self.inner.write_all(&tag)?;
        self.pending.clear();
        self.index += 1;
        Ok(())
    }

    /// Writes the final record and returns the inner writer (not flushed or synced).
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_pending(true)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // A full record is sealed only once more data arrives, so that the final record (which
        // `finish` seals) is never empty unless the whole file is.
        if self.pending.len() == RECORD_BYTES {
            self.seal_pending(false)?;
        }
        let take = buf.len().min(RECORD_BYTES - self.pending.len());
        self.pending.extend_from_slice(&buf[..take]);
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts a file written by [`EncryptingWriter`], one record at a time; any change to the
/// file (an altered byte, records reordered, dropped or appended, a cut end) is an
/// [`io::ErrorKind::InvalidData`] error naming the record, before any of that record's
/// plaintext is returned.
pub struct DecryptingReader<R: Read> {
    inner: R,
    cipher: Sm4Gcm,
    header: [u8; HEADER_BYTES],
    /// Decrypted plaintext of the current record and how much of it was returned.
    plain: Vec<u8>,
    offset: usize,
    /// Ciphertext read ahead of the current record (the byte that shows it was not the last).
    ahead: Option<u8>,
    index: u64,
    done: bool,
}

/// Reads until `buf` is full or the end; returns how many bytes were read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> DecryptingReader<R> {
    /// Reads and checks the header.
    pub fn new(mut inner: R, key: &AtRestKey) -> io::Result<Self> {
        let mut header = [0u8; HEADER_BYTES];
        let n = read_full(&mut inner, &mut header)?;
        if n < HEADER_BYTES || !is_encrypted(&header) {
            return Err(invalid(format!(
                "not an SM4-GCM encrypted file (expected the {HEADER_BYTES}-byte header starting \
                 with {:?})",
                String::from_utf8_lossy(&MAGIC)
            )));
        }
        let record = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        if record as usize != RECORD_BYTES {
            return Err(invalid(format!(
                "the header says records of {record} bytes; this version writes and reads \
                 {RECORD_BYTES}"
            )));
        }
        let mut salt = [0u8; SALT_BYTES];
        salt.copy_from_slice(&header[MAGIC.len() + 4..]);
        Ok(DecryptingReader {
            inner,
            cipher: key.file_cipher(&salt),
            header,
            plain: Vec::with_capacity(RECORD_BYTES + TAG_BYTES),
            offset: 0,
            ahead: None,
            index: 0,
            done: false,
        })
    }

    /// Reads, authenticates and decrypts the next record into `plain`.
    fn next_record(&mut self) -> io::Result<()> {
        let want = RECORD_BYTES + TAG_BYTES;
        self.plain.clear();
        self.plain.resize(want, 0);
        let mut filled = 0;
        if let Some(b) = self.ahead.take() {
            self.plain[0] = b;
            filled = 1;
        }
        filled += read_full(&mut self.inner, &mut self.plain[filled..])?;
        // A full record is the last one only if nothing follows it.
        let last = if filled == want {
            let mut one = [0u8; 1];
            if read_full(&mut self.inner, &mut one)? == 1 {
                self.ahead = Some(one[0]);
                false
            } else {
                true
            }
        } else {
            true
        };
        if filled < TAG_BYTES {
            return Err(invalid(format!(
                "record {}: the file ends inside a record ({filled} bytes, a record has at \
                 least the {TAG_BYTES}-byte tag): it was truncated",
                self.index
            )));
        }
        let body = filled - TAG_BYTES;
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&self.plain[body..filled]);
        self.plain.truncate(body);
        let nonce = record_nonce(self.index, last);
        self.cipher
            .decrypt_inout_detached(
                &nonce.into(),
                &self.header,
                self.plain.as_mut_slice().into(),
                &tag.into(),
            )
            .map_err(|_| {
                self.plain.clear();
                invalid(format!(
                    "record {}: SM4-GCM authentication failed (the file was altered, truncated, \
                     reordered or encrypted under another key)",
                    self.index
                ))
            })?;
        self.offset = 0;
        self.index += 1;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for DecryptingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.plain.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            self.next_record()?;
        }
        let n = buf.len().min(self.plain.len() - self.offset);
        buf[..n].copy_from_slice(&self.plain[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// Encrypts `plain` whole (small files: tests, model payloads).
pub fn encrypt_bytes<R: rand::CryptoRng + ?Sized>(
    key: &AtRestKey,
    plain: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    let mut w = EncryptingWriter::new(Vec::with_capacity(plain.len() + 64), key, rng)
        .expect("writing to a Vec cannot fail");
    w.write_all(plain).expect("writing to a Vec cannot fail");
    w.finish().expect("writing to a Vec cannot fail")
}

/// Decrypts a whole file's bytes.
pub fn decrypt_bytes(key: &AtRestKey, sealed: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(sealed.len());
    DecryptingReader::new(sealed, key)?.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn key() -> AtRestKey {
        AtRestKey::from_bytes([7; KEY_BYTES])
    }

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(19)
    }

    /// RFC 8998 Appendix A.1: SM4-GCM on the published key, IV, AAD and plaintext.
    #[test]
    fn sm4_gcm_matches_rfc_8998_a1() {
        let cipher = Sm4Gcm::new_from_slice(&unhex("0123456789ABCDEFFEDCBA9876543210")).unwrap();
        let nonce: [u8; 12] = unhex("00001234567800000000ABCD").try_into().unwrap();
        let aad = unhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
        let mut buf = unhex(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD\
             EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        );
        let tag = cipher
            .encrypt_inout_detached(&nonce.into(), &aad, buf.as_mut_slice().into())
            .unwrap();
        assert_eq!(
            buf,
            unhex(
                "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735\
                 D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
            )
        );
        assert_eq!(tag.to_vec(), unhex("83DE3541E4C2B58177E065A9BF7B62EC"));
    }

    fn records(len: usize) -> usize {
        len.div_ceil(RECORD_BYTES).max(1)
    }

    #[test]
    fn sizes_at_record_boundaries_round_trip_with_the_expected_length() {
        for len in [
            0,
            1,
            RECORD_BYTES - 1,
            RECORD_BYTES,
            RECORD_BYTES + 1,
            2 * RECORD_BYTES,
            3 * RECORD_BYTES + 17,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = encrypt_bytes(&key(), &plain, &mut rng());
            assert_eq!(
                sealed.len(),
                HEADER_BYTES + len + records(len) * TAG_BYTES,
                "{len}"
            );
            assert_eq!(decrypt_bytes(&key(), &sealed).unwrap(), plain, "{len}");
        }
    }

    #[test]
    fn every_kind_of_change_is_refused_naming_the_record() {
        let plain: Vec<u8> = (0..3 * RECORD_BYTES + 100).map(|i| i as u8).collect();
        let sealed = encrypt_bytes(&key(), &plain, &mut rng());
        let rec = RECORD_BYTES + TAG_BYTES;
        let fails = |bytes: &[u8]| decrypt_bytes(&key(), bytes).unwrap_err().to_string();
        // One flipped bit in record 1.
        let mut flipped = sealed.clone();
        flipped[HEADER_BYTES + rec + 5] ^= 1;
        let e = fails(&flipped);
        assert!(e.contains("record 1: SM4-GCM authentication failed"), "{e}");
        // Records 0 and 1 swapped.
        let mut swapped = sealed[..HEADER_BYTES].to_vec();
        swapped.extend_from_slice(&sealed[HEADER_BYTES + rec..HEADER_BYTES + 2 * rec]);
        swapped.extend_from_slice(&sealed[HEADER_BYTES..HEADER_BYTES + rec]);
        swapped.extend_from_slice(&sealed[HEADER_BYTES + 2 * rec..]);
        assert!(fails(&swapped).contains("record 0:"));
        // Cut at a record boundary: the last record left has no final flag.
        let cut = &sealed[..HEADER_BYTES + 2 * rec];
        assert!(fails(cut).contains("record 1: SM4-GCM authentication failed"));
        // Cut inside a record, and inside a tag.
        assert!(fails(&sealed[..sealed.len() - 1]).contains("record 3"));
        let e = fails(&sealed[..HEADER_BYTES + 3 * rec + 3]);
        assert!(e.contains("record 3") && e.contains("truncated"), "{e}");
        // Bytes appended after the final record.
        let mut longer = sealed.clone();
        longer.extend_from_slice(&[0; TAG_BYTES + 1]);
        assert!(fails(&longer).contains("record 3"));
        // Another key, another header, not an encrypted file.
        let e = decrypt_bytes(&AtRestKey::from_bytes([8; KEY_BYTES]), &sealed).unwrap_err();
        assert!(e.to_string().contains("another key"), "{e}");
        let mut header = sealed.clone();
        header[HEADER_BYTES - 1] ^= 1;
        assert!(fails(&header).contains("record 0"));
        let e = fails(b"id,x\n1,2\n");
        assert!(e.contains("not an SM4-GCM encrypted file"), "{e}");
        // The empty file's single record cannot be dropped either.
        let empty = encrypt_bytes(&key(), b"", &mut rng());
        assert_eq!(decrypt_bytes(&key(), &empty).unwrap(), b"");
        assert!(fails(&empty[..HEADER_BYTES]).contains("truncated"));
    }

    #[test]
    fn the_plaintext_does_not_appear_and_each_file_differs() {
        let plain = b"customer-000123,52000.5,1\n".repeat(500);
        let a = encrypt_bytes(&key(), &plain, &mut rng());
        let b = encrypt_bytes(&key(), &plain, &mut ChaCha20Rng::seed_from_u64(20));
        assert!(!a.windows(15).any(|w| w == b"customer-000123"));
        assert_ne!(a[HEADER_BYTES..], b[HEADER_BYTES..]);
        assert!(!format!("{:?}", key()).contains('7'));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Random sizes up to four records, written in random pieces and read back in random
        /// pieces.
        #[test]
        fn round_trips_for_random_sizes_and_pieces(
            len in prop_oneof![0usize..300, 0usize..4 * RECORD_BYTES + 3],
            write_piece in 1usize..100_000,
            read_piece in 1usize..100_000,
            seed in any::<u64>(),
        ) {
            let mut r = ChaCha20Rng::seed_from_u64(seed);
            let plain: Vec<u8> = (0..len).map(|i| (i as u64 ^ seed) as u8).collect();
            let mut w = EncryptingWriter::new(Vec::new(), &key(), &mut r).unwrap();
            for piece in plain.chunks(write_piece) {
                w.write_all(piece).unwrap();
            }
            let sealed = w.finish().unwrap();
            prop_assert_eq!(sealed.len(), HEADER_BYTES + len + records(len) * TAG_BYTES);
            let mut reader = DecryptingReader::new(sealed.as_slice(), &key()).unwrap();
            let mut out = Vec::new();
            let mut buf = vec![0u8; read_piece];
            loop {
                let n = reader.read(&mut buf).unwrap();
                if n == 0 { break; }
                out.extend_from_slice(&buf[..n]);
            }
            prop_assert_eq!(out, plain);
        }
    }
}
