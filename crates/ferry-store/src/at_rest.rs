//! Encryption at rest of the node's model files (`[crypto] encrypt_at_rest = true`).
//!
//! With a key set ([`Store::set_at_rest_key`]) every model payload is written as an SM4-GCM
//! file ([`ferry_crypto::at_rest`]: 64 KiB authenticated records, a key per file) and read
//! back through the decrypting reader. The record keeps the SHA-256 of the *plaintext*, and
//! the node's signature covers it, so a file swapped for another (encrypted or not) is still
//! refused. Files written before encryption was turned on stay readable as they are (a file is
//! encrypted exactly when it starts with [`ferry_crypto::at_rest::MAGIC`]); an encrypted file
//! on a node without the key is an error naming the file and the key file.
//!
//! The key is 16 random bytes in `identity/at-rest.key` (hex, mode 0600), created once and
//! never overwritten ([`load_or_create_at_rest_key`]); a backup copies it with the identity,
//! and losing it loses every encrypted file.

use crate::{Store, StoreError};
use ferry_crypto::at_rest::{AtRestKey, DecryptingReader, KEY_BYTES, is_encrypted};
use std::io::Read;
use std::path::Path;

/// File of the node's at-rest key in its identity directory.
pub const AT_REST_KEY_FILE: &str = "at-rest.key";

/// Reads the at-rest key from `identity_dir`/[`AT_REST_KEY_FILE`], or creates it there (mode
/// 0600, written in full before it appears under its name, never replacing a key that is
/// already there) if absent.
pub fn load_or_create_at_rest_key(identity_dir: &Path) -> Result<AtRestKey, StoreError> {
    crate::fsutil::load_or_create_secret_hex(
        &identity_dir.join(AT_REST_KEY_FILE),
        "the at-rest key",
        &format!("{} hexadecimal digits of an SM4 key", 2 * KEY_BYTES),
        |b| {
            <[u8; KEY_BYTES]>::try_from(b)
                .ok()
                .map(AtRestKey::from_bytes)
        },
        || {
            let key = crate::fsutil::random_bytes::<KEY_BYTES>()?;
            Ok((AtRestKey::from_bytes(key), key.to_vec()))
        },
    )
}

impl Store {
    /// Encrypts model files written from now on with `key` (SM4-GCM), and decrypts encrypted
    /// ones when they are read.
    pub fn set_at_rest_key(&mut self, key: AtRestKey) {
        self.at_rest = Some(key);
    }

    /// Whether this store encrypts the files it writes.
    pub fn encrypts_at_rest(&self) -> bool {
        self.at_rest.is_some()
    }

    /// `plain` as this store writes it: SM4-GCM encrypted under the at-rest key, or as is.
    pub(crate) fn seal_for_disk(&self, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let Some(key) = &self.at_rest else {
            return Ok(plain.to_vec());
        };
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| StoreError::Key("the system random source failed".into()))?;
        let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::from_seed(seed);
        Ok(ferry_crypto::at_rest::encrypt_bytes(key, plain, &mut rng))
    }

    /// The plaintext of the file at `path`: decrypted (each record authenticated) when it is
    /// encrypted, as is otherwise. Errors name the file.
    pub fn read_file_plain(&self, path: &Path) -> Result<Vec<u8>, StoreError> {
        let bytes =
            std::fs::read(path).map_err(|e| StoreError::io(path, "cannot read the file", e))?;
        if !is_encrypted(&bytes) {
            return Ok(bytes);
        }
        let Some(key) = &self.at_rest else {
            return Err(StoreError::io(
                path,
                "cannot decrypt",
                format!(
                    "the file is encrypted at rest (SM4-GCM) but this node has no key: restore \
                     identity/{AT_REST_KEY_FILE} and set [crypto] encrypt_at_rest = true"
                ),
            ));
        };
        let mut plain = Vec::with_capacity(bytes.len());
        DecryptingReader::new(bytes.as_slice(), key)
            .and_then(|mut r| r.read_to_end(&mut plain))
            .map_err(|e| StoreError::io(path, "cannot decrypt", e))?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelLineage, ModelSigner, StoreModel};

    fn model(payload: &[u8]) -> StoreModel {
        StoreModel {
            name: "scorecard".into(),
            kind: "hetero_lr".into(),
            role: "guest".into(),
            payload: payload.to_vec(),
            lineage: ModelLineage {
                job_id: "job-1".into(),
                task: "train".into(),
                datasets: vec!["loans".into()],
                params: serde_json::json!({}),
            },
            metrics: serde_json::json!({}),
        }
    }

    #[test]
    fn model_files_are_encrypted_read_back_and_checked_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let signer = ModelSigner::generate().unwrap();
        let open = |key: Option<AtRestKey>| {
            let mut store = Store::open(
                &tmp.path().join("state"),
                &tmp.path().join("data"),
                signer.clone(),
            )
            .unwrap();
            if let Some(k) = key {
                store.set_at_rest_key(k);
            }
            store
        };
        // A model stored before encryption was turned on stays readable after.
        let plain_store = open(None);
        let old = plain_store
            .store_model(model(b"weights in the clear"))
            .unwrap();
        drop(plain_store);
        let key = load_or_create_at_rest_key(&tmp.path().join("state")).unwrap();
        let store = open(Some(key.clone()));
        assert!(store.encrypts_at_rest());
        // Across a record boundary, so that more than one record is checked.
        let payload: Vec<u8> = b"{\"weights\": [0.25, -1.5]}"
            .iter()
            .cycle()
            .take(ferry_crypto::at_rest::RECORD_BYTES + 100)
            .copied()
            .collect();
        let rec = store.store_model(model(&payload)).unwrap();
        let on_disk = std::fs::read(&rec.path).unwrap();
        assert!(ferry_crypto::at_rest::is_encrypted(&on_disk));
        assert!(!on_disk.windows(9).any(|w| w == b"\"weights\""));
        assert_eq!(
            store.load_model("scorecard", Some(rec.version)).unwrap().1,
            payload
        );
        assert_eq!(
            store.load_model("scorecard", Some(old.version)).unwrap().1,
            b"weights in the clear"
        );
        // A flipped bit in the second record: refused, naming the file and the record.
        let mut altered = on_disk.clone();
        let last = altered.len() - 30;
        altered[last] ^= 1;
        std::fs::write(&rec.path, &altered).unwrap();
        let e = store
            .load_model("scorecard", Some(rec.version))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&rec.path.display().to_string()) && e.contains("record 1: SM4-GCM"),
            "{e}"
        );
        // Cut after the first record.
        let cut = ferry_crypto::at_rest::HEADER_BYTES
            + ferry_crypto::at_rest::RECORD_BYTES
            + ferry_crypto::at_rest::TAG_BYTES;
        std::fs::write(&rec.path, &on_disk[..cut]).unwrap();
        let e = store
            .load_model("scorecard", Some(rec.version))
            .unwrap_err()
            .to_string();
        assert!(e.contains("record 0: SM4-GCM authentication failed"), "{e}");
        // Without the key, the node says which key file is missing.
        std::fs::write(&rec.path, &on_disk).unwrap();
        drop(store);
        let e = open(None)
            .load_model("scorecard", Some(rec.version))
            .unwrap_err()
            .to_string();
        assert!(e.contains(AT_REST_KEY_FILE) && e.contains("no key"), "{e}");
    }

    #[test]
    fn the_key_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_at_rest_key(dir.path()).unwrap();
        let again = load_or_create_at_rest_key(dir.path()).unwrap();
        assert_eq!(first.to_bytes(), again.to_bytes());
        let file = dir.path().join(AT_REST_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(&file, "short").unwrap();
        let e = load_or_create_at_rest_key(dir.path()).unwrap_err();
        assert!(e.to_string().contains("32 hexadecimal digits"), "{e}");
    }
}
