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
use std::time::SystemTime;
use tokio::sync::watch;

/// ALPN id for HTTP/2, which gRPC runs on.
const ALPN_H2: &[u8] = b"h2";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// One pinned certificate: whose it is, and until when it is accepted (`None`: until it is
/// replaced or removed). A certificate being rotated out keeps a deadline for the overlap.
#[derive(Clone, Debug)]
struct Pin {
    party: PartyId,
    until: Option<SystemTime>,
}

impl Pin {
    fn valid_at(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|t| now < t)
    }
}

/// The pinned peer certificates of a node, shared by its server and its clients. Changed at
/// run time by [`crate::FederationTransport`]'s `add_peer`, `rotate_peer` and `remove_peer`;
/// every change is announced on [`PinStore::subscribe`] so that open connections of a party
/// whose certificate is no longer pinned are cut at once.
pub struct PinStore {
    by_der: RwLock<HashMap<Vec<u8>, Pin>>,
    refusals: Mutex<Vec<String>>,
    changed: watch::Sender<u64>,
}

impl Default for PinStore {
    fn default() -> Self {
        PinStore {
            by_der: RwLock::new(HashMap::new()),
            refusals: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
        }
    }
}

impl PinStore {
    /// Pins `cert` as the only certificate of `party` (replacing any other).
    pub fn pin(&self, party: PartyId, cert: CertificateDer<'static>) {
        let mut map = self.by_der.write().expect("pin store lock");
        map.retain(|_, p| p.party != party);
        map.insert(cert.to_vec(), Pin { party, until: None });
        drop(map);
        self.announce();
    }

    /// Pins `cert` as the new certificate of `party` and keeps accepting its current ones
    /// until `overlap_until` (a certificate already due to expire earlier keeps its deadline).
    pub fn rotate(&self, party: PartyId, cert: CertificateDer<'static>, overlap_until: SystemTime) {
        let mut map = self.by_der.write().expect("pin store lock");
        for pin in map.values_mut().filter(|p| p.party == party) {
            pin.until = Some(pin.until.map_or(overlap_until, |t| t.min(overlap_until)));
        }
        map.insert(cert.to_vec(), Pin { party, until: None });
        drop(map);
        self.announce();
    }

    /// Pins `cert` for `party` until `until`, next to its other certificates (a rotation's
    /// previous certificate, restored when a node starts within the overlap).
    pub fn pin_until(&self, party: PartyId, cert: CertificateDer<'static>, until: SystemTime) {
        let mut map = self.by_der.write().expect("pin store lock");
        map.entry(cert.to_vec()).or_insert(Pin {
            party,
            until: Some(until),
        });
        drop(map);
        self.announce();
    }

    /// Forgets every certificate of `party`; returns whether it had any.
    pub fn unpin(&self, party: &PartyId) -> bool {
        let mut map = self.by_der.write().expect("pin store lock");
        let before = map.len();
        map.retain(|_, p| p.party != *party);
        let removed = map.len() != before;
        drop(map);
        self.announce();
        removed
    }

    fn announce(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Notified after every change of the pins.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The party whose certificate `der` is, if it is pinned and within its validity.
    pub fn party_of(&self, der: &[u8]) -> Option<PartyId> {
        let now = SystemTime::now();
        self.by_der
            .read()
            .expect("pin store lock")
            .get(der)
            .filter(|p| p.valid_at(now))
            .map(|p| p.party.clone())
    }

    /// Until when certificate `der` is accepted: `None` if it is pinned for good (or not at
    /// all).
    pub fn valid_until(&self, der: &[u8]) -> Option<SystemTime> {
        self.by_der
            .read()
            .expect("pin store lock")
            .get(der)
            .and_then(|p| p.until)
    }

    /// Whether any certificate of `party` is pinned and valid now.
    pub fn is_pinned(&self, party: &PartyId) -> bool {
        let now = SystemTime::now();
        self.by_der
            .read()
            .expect("pin store lock")
            .values()
            .any(|p| p.party == *party && p.valid_at(now))
    }

    /// The certificate `party` is pinned with for good (not one being rotated out).
    pub fn cert_of(&self, party: &PartyId) -> Option<Vec<u8>> {
        self.by_der
            .read()
            .expect("pin store lock")
            .iter()
            .find(|(_, p)| p.party == *party && p.until.is_none())
            .map(|(d, _)| d.clone())
    }

    /// The parties with a valid pinned certificate, in name order.
    pub fn parties(&self) -> Vec<PartyId> {
        let now = SystemTime::now();
        let mut out: Vec<PartyId> = self
            .by_der
            .read()
            .expect("pin store lock")
            .values()
            .filter(|p| p.valid_at(now))
            .map(|p| p.party.clone())
            .collect();
        out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        out.dedup();
        out
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
        // Looked up at each handshake, so a rotation (old and new certificate both valid
        // during the overlap) or a removal applies to the next connection without a restart.
        if self.pins.party_of(end_entity).as_ref() == Some(&self.expected_party) {
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
/// certificates pinned for `peer` (during a rotation's overlap, the old or the new one).
pub fn client_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    peer: &PartyId,
    pins: Arc<PinStore>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    if !pins.is_pinned(peer) {
        return Err(rustls::Error::General(format!(
            "no certificate is pinned for party '{peer}'"
        )));
    }
    let verifier = Arc::new(PinnedServer {
        expected_party: peer.clone(),
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
