//! The node's signature over stored models.

use crate::StoreError;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

/// Signs and verifies with the node's identity key (ECDSA P-256 with SHA-256, ASN.1 DER
/// signatures), the same key the node's TLS certificate is made from.
#[derive(Clone)]
pub struct ModelSigner {
    key: Arc<EcdsaKeyPair>,
    rng: SystemRandom,
}

impl std::fmt::Debug for ModelSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("ModelSigner")
            .field("public_key", &self.public_key_hex())
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
