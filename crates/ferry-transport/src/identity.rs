//! Party identities: a private key and a self-signed certificate per node, and certificate
//! fingerprints for pinning.
//!
//! Trust in Ferry is explicit: operators exchange certificate files out of band and pin them
//! (`ferry peer add`). There is no certificate authority, so a self-signed certificate is
//! enough; what authenticates a peer is that its certificate is byte-for-byte the pinned one
//! and that it proves possession of the matching key in the TLS handshake.

use crate::error::TransportError;
use ferry_context::PartyId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// A node's key and certificate, PEM-encoded.
#[derive(Clone)]
pub struct Identity {
    pub key_pem: String,
    pub cert_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert_fingerprint", &self.fingerprint().ok())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh ECDSA P-256 key and a self-signed certificate whose common name is the party
    /// name and whose subject alternative name is `<party>.ferry`.
    pub fn generate(party: &PartyId) -> Result<Identity, TransportError> {
        let key =
            rcgen::KeyPair::generate().map_err(|e| TransportError::Identity(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(vec![format!("{party}.ferry")])
            .map_err(|e| TransportError::Identity(e.to_string()))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, party.as_str());
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Ferry node");
        let cert = params
            .self_signed(&key)
            .map_err(|e| TransportError::Identity(e.to_string()))?;
        Ok(Identity {
            key_pem: key.serialize_pem(),
            cert_pem: cert.pem(),
        })
    }

    pub fn cert_der(&self) -> Result<CertificateDer<'static>, TransportError> {
        parse_cert_pem(&self.cert_pem)
    }

    pub fn key_der(&self) -> Result<PrivateKeyDer<'static>, TransportError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| TransportError::Identity(format!("cannot read the private key: {e}")))
    }

    /// SHA-256 fingerprint of the certificate, hex with colons (what operators compare).
    pub fn fingerprint(&self) -> Result<String, TransportError> {
        Ok(fingerprint(&self.cert_der()?))
    }
}

/// Parses the first certificate of a PEM text.
pub fn parse_cert_pem(pem: &str) -> Result<CertificateDer<'static>, TransportError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| TransportError::Identity(format!("not a PEM certificate: {e}")))
}

/// SHA-256 of a DER certificate as `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The common name a certificate claims, for log lines about refused connections. Only used
/// to describe a certificate we are about to refuse, so a best-effort scan of the DER for the
/// first commonName attribute (OID 2.5.4.3) is enough; returns `None` if there is none.
pub fn claimed_name(der: &[u8]) -> Option<String> {
    const CN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let pos = der.windows(CN_OID.len()).position(|w| w == CN_OID)? + CN_OID.len();
    let tag = *der.get(pos)?;
    // UTF8String, PrintableString, IA5String, TeletexString
    if !matches!(tag, 0x0c | 0x13 | 0x16 | 0x14) {
        return None;
    }
    let len = *der.get(pos + 1)? as usize;
    if len >= 0x80 {
        return None; // long names are not party names
    }
    let bytes = der.get(pos + 2..pos + 2 + len)?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_parses_and_claims_its_name() {
        let party = PartyId::new("bank").unwrap();
        let id = Identity::generate(&party).unwrap();
        let der = id.cert_der().unwrap();
        assert_eq!(claimed_name(&der).as_deref(), Some("bank"));
        assert!(id.key_der().is_ok());
        let fp = id.fingerprint().unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
        let other = Identity::generate(&party).unwrap();
        assert_ne!(
            other.fingerprint().unwrap(),
            fp,
            "every identity has its own key"
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(parse_cert_pem("hello").is_err());
        assert_eq!(
            claimed_name(&[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x50]),
            None
        );
    }
}
