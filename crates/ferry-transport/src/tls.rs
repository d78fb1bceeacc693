//! Mutual TLS with pinned certificates, in both directions.
//!
//! * As a server, a node asks every client for a certificate and accepts it only if it is one
//!   of the pinned peer certificates (byte for byte); the peer's party name comes from the pin,
//!   never from the certificate's own claims.
//! * As a client, a node accepts the server only if it presents exactly the certificate pinned
//!   for the party it meant to reach.
//!
//! Handshake signatures are verified with the crypto provider's algorithms, so possession of
//! the pinned certificate's private key is proven. Refusals are logged with the name the
//! stranger's certificate claims and its fingerprint, and kept in [`PinStore::refusals`].

use crate::identity::{claimed_name, fingerprint};
use ferry_context::PartyId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// ALPN id for HTTP/2, which gRPC runs on.
const ALPN_H2: &[u8] = b"h2";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// The pinned peer certificates of a node, shared by its server and its clients.
#[derive(Default)]
pub struct PinStore {
    by_der: RwLock<HashMap<Vec<u8>, PartyId>>,
    refusals: Mutex<Vec<String>>,
}

impl PinStore {
    pub fn pin(&self, party: PartyId, cert: CertificateDer<'static>) {
        let mut map = self.by_der.write().expect("pin store lock");
        map.retain(|_, p| *p != party);
        map.insert(cert.to_vec(), party);
    }

    pub fn party_of(&self, der: &[u8]) -> Option<PartyId> {
        self.by_der
            .read()
            .expect("pin store lock")
            .get(der)
            .cloned()
    }

    pub fn cert_of(&self, party: &PartyId) -> Option<Vec<u8>> {
        self.by_der
            .read()
            .expect("pin store lock")
            .iter()
            .find(|(_, p)| *p == party)
            .map(|(d, _)| d.clone())
    }

    /// Log lines of refused handshakes (most recent last).
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().expect("refusal log lock").clone()
    }

    fn refuse(&self, line: String) {
        tracing::warn!("{line}");
        let mut log = self.refusals.lock().expect("refusal log lock");
        if log.len() >= 1000 {
            log.remove(0);
        }
        log.push(line);
    }
}

#[derive(Debug)]
struct PinnedClients {
    pins: Arc<PinStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for PinStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinStore").finish_non_exhaustive()
    }
}

impl ClientCertVerifier for PinnedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.pins.party_of(end_entity).is_some() {
            return Ok(ClientCertVerified::assertion());
        }
        let claimed = claimed_name(end_entity).unwrap_or_else(|| "<no name>".into());
        self.pins.refuse(format!(
            "refused a connection from an unknown certificate claiming to be '{claimed}' (fingerprint {}): \
             pin it with `ferry peer add` if this party should be trusted",
            fingerprint(end_entity)
        ));
        Err(rustls::Error::General(format!(
            "certificate of '{claimed}' is not pinned by this node"
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[derive(Debug)]
struct PinnedServer {
    expected_party: PartyId,
    expected_der: Vec<u8>,
    pins: Arc<PinStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected_der.as_slice() {
            return Ok(ServerCertVerified::assertion());
        }
        let claimed = claimed_name(end_entity).unwrap_or_else(|| "<no name>".into());
        self.pins.refuse(format!(
            "refused the server at the address of '{}': it presented a certificate claiming to be '{claimed}' \
             (fingerprint {}) instead of the pinned one",
            self.expected_party,
            fingerprint(end_entity)
        ));
        Err(rustls::Error::General(format!(
            "server does not present the certificate pinned for '{}'",
            self.expected_party
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// TLS server configuration: our certificate, pinned client certificates required.
pub fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    pins: Arc<PinStore>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let verifier = Arc::new(PinnedClients {
        pins,
        algorithms: algorithms(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// TLS client configuration for reaching `peer`: present our certificate, accept only the
/// certificate pinned for `peer`.
pub fn client_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    peer: &PartyId,
    pins: Arc<PinStore>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let expected_der = pins.cert_of(peer).ok_or_else(|| {
        rustls::Error::General(format!("no certificate is pinned for party '{peer}'"))
    })?;
    let verifier = Arc::new(PinnedServer {
        expected_party: peer.clone(),
        expected_der,
        pins,
        algorithms: algorithms(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![cert], key)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}
