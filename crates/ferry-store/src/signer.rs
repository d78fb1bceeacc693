//! The node's signature over stored models.
//!
//! Two algorithms, chosen by the node's crypto suite and recorded with every signature so that
//! verification never has to guess:
//!
//! | suite | algorithm | key | stored form |
//! |---|---|---|---|
//! | `default` | ECDSA P-256 with SHA-256 (ASN.1 DER) | the identity key (`identity/key.pem`) | lower-case hex |
//! | `gm` | SM2 signature with SM3, id `1234567812345678` (GB/T 32918.2; `ferry_crypto::gm`) | `identity/sm2-key.hex`, mode 0600 | `sm2:` + hex of `r ‖ s` |
//!
//! Records signed before a node switched suites keep verifying: the prefix says which key
//! checks them. Audit checkpoints follow the same choice (SM2 under `gm`); since partners
//! check them, an SM2 checkpoint carries the SM2 public key bound to the pinned P-256 identity
//! key ([`crate::actions`], "SM2 checkpoints").

use crate::StoreError;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// Prefix of an SM2 signature as a record stores it.
pub const SM2_SIGNATURE_PREFIX: &str = "sm2:";

/// File of a node's SM2 signing key in its identity directory.
pub const SM2_KEY_FILE: &str = "sm2-key.hex";

/// The algorithm of a stored signature (serialised as [`SignatureAlgorithm::as_str`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureAlgorithm {
    /// ECDSA P-256 with SHA-256, the identity key's.
    #[default]
    EcdsaP256Sha256,
    /// SM2 with SM3 (the GM suite).
    Sm2Sm3,
}

impl SignatureAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            SignatureAlgorithm::Sm2Sm3 => "sm2-sm3",
        }
    }

    /// The algorithm [`SignatureAlgorithm::as_str`] names.
    pub fn from_name(name: &str) -> Option<SignatureAlgorithm> {
        [
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureAlgorithm::Sm2Sm3,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }

    /// The algorithm a stored signature was made with, and its bytes.
    pub fn parse(stored: &str) -> Option<(SignatureAlgorithm, Vec<u8>)> {
        match stored.strip_prefix(SM2_SIGNATURE_PREFIX) {
            Some(rest) => crate::unhex(rest).map(|b| (SignatureAlgorithm::Sm2Sm3, b)),
            None => crate::unhex(stored).map(|b| (SignatureAlgorithm::EcdsaP256Sha256, b)),
        }
    }
}

/// Signs and verifies with the node's identity key (ECDSA P-256 with SHA-256, ASN.1 DER
/// signatures), the same key the node's TLS certificate is made from.
#[derive(Clone)]
pub struct ModelSigner {
    key: Arc<EcdsaKeyPair>,
    rng: SystemRandom,
    /// Under the GM suite: the key model records are signed with.
    sm2: Option<Arc<ferry_crypto::gm::Sm2Signer>>,
}

impl std::fmt::Debug for ModelSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("ModelSigner")
            .field("public_key", &self.public_key_hex())
            .field("sm2", &self.sm2)
            .finish()
    }
}

impl ModelSigner {
    /// From a PEM `PRIVATE KEY` block holding a PKCS#8 ECDSA P-256 key (what rcgen writes to
    /// `identity/key.pem`).
    pub fn from_pem(key_pem: &str) -> Result<Self, StoreError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
            StoreError::Key(format!(
                "expected a PEM 'PRIVATE KEY' (PKCS#8) block: {e}; convert an 'EC PRIVATE KEY' with `openssl pkcs8 -topk8 -nocrypt`"
            ))
        })?;
        Self::from_pkcs8_der(der.secret_pkcs8_der())
    }

    /// From a DER PKCS#8 document.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, StoreError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
            .map_err(|e| StoreError::Key(format!("not a PKCS#8 ECDSA P-256 private key ({e})")))?;
        Ok(ModelSigner {
            key: Arc::new(key),
            rng,
            sm2: None,
        })
    }

    /// A fresh random key (tests and tools; a node uses its identity key).
    pub fn generate() -> Result<Self, StoreError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|e| StoreError::Key(format!("cannot generate a key: {e}")))?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// An ASN.1 DER ECDSA signature over `msg`. Fails only if the system random source does.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.key
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|e| StoreError::Key(format!("signing failed ({e})")))
    }

    /// Whether `sig` is this key's signature over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, self.key.public_key().as_ref())
            .verify(msg, sig)
            .is_ok()
    }

    /// The uncompressed SEC1 public key (65 bytes), hex.
    pub fn public_key_hex(&self) -> String {
        crate::hex(self.key.public_key().as_ref())
    }

    /// The same signer, signing model records with `key` (SM2 with SM3) from now on; records
    /// signed with the identity key still verify.
    pub fn with_sm2(mut self, key: ferry_crypto::gm::Sm2Signer) -> Self {
        self.sm2 = Some(Arc::new(key));
        self
    }

    /// The algorithm new model records are signed with.
    pub fn record_algorithm(&self) -> SignatureAlgorithm {
        if self.sm2.is_some() {
            SignatureAlgorithm::Sm2Sm3
        } else {
            SignatureAlgorithm::EcdsaP256Sha256
        }
    }

    /// Under the GM suite, the SM2 key (model records and audit checkpoints are signed with it).
    pub fn sm2(&self) -> Option<&ferry_crypto::gm::Sm2Signer> {
        self.sm2.as_deref()
    }

    /// A signature over `msg` in its stored form: hex (ECDSA P-256), or `sm2:` + hex under
    /// the GM suite.
    pub fn sign_record(&self, msg: &[u8]) -> Result<String, StoreError> {
        match &self.sm2 {
            Some(sm2) => Ok(format!(
                "{SM2_SIGNATURE_PREFIX}{}",
                crate::hex(&sm2.sign(msg))
            )),
            None => Ok(crate::hex(&self.sign(msg)?)),
        }
    }

    /// Checks a stored signature over `msg` with the key of the algorithm it records. The
    /// error says why it does not verify.
    pub fn verify_record(&self, msg: &[u8], stored: &str) -> Result<(), String> {
        let Some((algorithm, sig)) = SignatureAlgorithm::parse(stored) else {
            return Err("the stored signature is not hex (or 'sm2:' and hex)".into());
        };
        let ok = match algorithm {
            SignatureAlgorithm::EcdsaP256Sha256 => self.verify(msg, &sig),
            SignatureAlgorithm::Sm2Sm3 => match &self.sm2 {
                Some(sm2) => sm2.verify(msg, &sig),
                None => {
                    return Err(format!(
                        "the record is signed with SM2 (suite gm) but this node has no SM2 key; \
                         restore identity/{SM2_KEY_FILE} or set [crypto] suite = \"gm\""
                    ));
                }
            },
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "the {} signature does not match the record",
                algorithm.as_str()
            ))
        }
    }

    /// Reads the node's SM2 key from `identity_dir`/[`SM2_KEY_FILE`], or creates it there
    /// (mode 0600, written in full before it appears under its name) if absent.
    pub fn load_or_create_sm2_key(
        identity_dir: &Path,
    ) -> Result<ferry_crypto::gm::Sm2Signer, StoreError> {
        crate::fsutil::load_or_create_secret_hex(
            &identity_dir.join(SM2_KEY_FILE),
            "the SM2 key",
            "64 hexadecimal digits of an SM2 secret key",
            |b| ferry_crypto::gm::Sm2Signer::from_secret_bytes(b).ok(),
            || {
                let seed = crate::fsutil::random_bytes::<32>()?;
                let key = ferry_crypto::gm::Sm2Signer::generate(
                    &mut <rand_chacha::ChaCha20Rng as rand::SeedableRng>::from_seed(seed),
                );
                let bytes = key.secret_bytes().to_vec();
                Ok((key, bytes))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject() {
        let signer = ModelSigner::generate().unwrap();
        let sig = signer.sign(b"statement").unwrap();
        assert!(signer.verify(b"statement", &sig));
        assert!(!signer.verify(b"statemenT", &sig));
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(!signer.verify(b"statement", &bad));
        let other = ModelSigner::generate().unwrap();
        assert!(!other.verify(b"statement", &sig));
        assert!(!format!("{signer:?}").contains("PRIVATE"));
    }

    #[test]
    fn records_say_their_algorithm_and_verify_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let ecdsa_only = ModelSigner::generate().unwrap();
        let legacy = ecdsa_only.sign_record(b"statement").unwrap();
        assert_eq!(
            SignatureAlgorithm::parse(&legacy).unwrap().0,
            SignatureAlgorithm::EcdsaP256Sha256
        );
        let sm2_key = ModelSigner::load_or_create_sm2_key(dir.path()).unwrap();
        let gm = ecdsa_only.clone().with_sm2(sm2_key);
        assert_eq!(gm.record_algorithm(), SignatureAlgorithm::Sm2Sm3);
        let signed = gm.sign_record(b"statement").unwrap();
        assert!(
            signed.starts_with("sm2:") && signed.len() == 4 + 128,
            "{signed}"
        );
        assert_eq!(gm.verify_record(b"statement", &signed), Ok(()));
        // Records signed before the switch still verify, with the identity key.
        assert_eq!(gm.verify_record(b"statement", &legacy), Ok(()));
        let e = gm.verify_record(b"statemenT", &signed).unwrap_err();
        assert!(e.contains("sm2-sm3 signature does not match"), "{e}");
        let e = gm.verify_record(b"statemenT", &legacy).unwrap_err();
        assert!(
            e.contains("ecdsa-p256-sha256 signature does not match"),
            "{e}"
        );
        // An SM2 record read by a node without the SM2 key says what is missing.
        let e = ecdsa_only.verify_record(b"statement", &signed).unwrap_err();
        assert!(e.contains("no SM2 key") && e.contains(SM2_KEY_FILE), "{e}");
        assert!(gm.verify_record(b"statement", "sm2:zz").is_err());
        // An SM2 signature relabelled as ECDSA (or the reverse) does not verify.
        assert!(gm.verify_record(b"statement", &signed[4..]).is_err());
        assert!(
            gm.verify_record(b"statement", &format!("sm2:{legacy}"))
                .is_err()
        );
        assert!(!format!("{gm:?}").contains("PRIVATE"));
    }

    #[test]
    fn the_sm2_key_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = ModelSigner::load_or_create_sm2_key(dir.path()).unwrap();
        let again = ModelSigner::load_or_create_sm2_key(dir.path()).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        let file = dir.path().join(SM2_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        std::fs::write(&file, "not a key").unwrap();
        let e = ModelSigner::load_or_create_sm2_key(dir.path()).unwrap_err();
        assert!(e.to_string().contains("64 hexadecimal digits"), "{e}");
    }

    #[test]
    fn rejects_non_keys() {
        assert!(matches!(
            ModelSigner::from_pem("not a pem"),
            Err(StoreError::Key(_))
        ));
        let bogus = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            ModelSigner::from_pem(bogus),
            Err(StoreError::Key(_))
        ));
    }
}
