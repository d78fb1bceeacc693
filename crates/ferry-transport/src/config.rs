//! A node directory: configuration, identity and pinned peers on disk.
//!
//! ```text
//! <node-dir>/
//!   ferry.toml           configuration (below)
//!   identity/key.pem     private key, mode 0600
//!   identity/cert.pem    self-signed certificate: give this file to partners
//!   peers/<name>.pem     pinned partner certificates
//!   data/                datasets and models
//!   state/               metadata database
//! ```

use crate::error::TransportError;
use crate::identity::{Identity, fingerprint, parse_cert_pem};
use ferry_context::PartyId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "ferry.toml";

/// `ferry.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeConfig {
    /// This node's party name.
    pub party: String,
    /// Address the federation endpoint (gRPC over mutual TLS) listens on.
    pub federation_listen: String,
    /// Address the REST API for local users listens on.
    pub api_listen: String,
    /// Directories and files, relative to the node directory unless absolute.
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub key_file: PathBuf,
    pub cert_file: PathBuf,
    #[serde(default)]
    pub limits: Limits,
    /// Whether jobs proposed by partners run without a local `ferry job approve`.
    #[serde(default)]
    pub auto_approve: bool,
    #[serde(default)]
    pub peers: Vec<PeerEntry>,
    /// Tables other layers read (`[policy]`, `[datasets]` of the node). Kept verbatim so that
    /// saving the configuration (`ferry peer add`) never drops an operator's settings.
    #[serde(flatten)]
    pub other: toml::Table,
}

/// Transport limits (`[limits]` in `ferry.toml`). Every field has a default, so a file written
/// before a field existed still loads; sizes are MiB (2^20 bytes).
///
/// ```toml
/// [limits]
/// max_message_mb = 256          # largest single message a partner may send
/// max_session_mb = 16384        # most bytes a partner may send into one session
/// max_peer_buffered_mb = 1024   # most bytes a partner may make this node hold at once
/// max_sessions_per_peer = 128   # most sessions a partner may have open on this node
/// timeout_secs = 600
/// ```
///
/// `max_peer_buffered_mb` must be at least `max_message_mb` (the transport refuses to start
/// otherwise). The defaults and their reasons are the `DEFAULT_*` constants of
/// [`crate::transport`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Limits {
    /// Largest single message accepted from a peer.
    pub max_message_mb: u64,
    /// Most bytes accepted from one peer in one session.
    pub max_session_mb: u64,
    /// Most bytes one peer may make this node hold at once, over all its sessions (messages
    /// received and not yet read, and the one being received). Past it the node stops reading
    /// from that peer until its messages are read; other peers are not affected.
    pub max_peer_buffered_mb: u64,
    /// Most sessions one peer may have open on this node; a message opening one more is
    /// refused with an error naming the peer and this limit.
    pub max_sessions_per_peer: usize,
    /// Seconds a receive waits before failing, and a message may stay undelivered.
    pub timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        use crate::transport::{
            DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_PEER_BUFFERED_BYTES, DEFAULT_MAX_SESSION_BYTES,
            DEFAULT_MAX_SESSIONS_PER_PEER,
        };
        Limits {
            max_message_mb: DEFAULT_MAX_MESSAGE_BYTES >> 20,
            max_session_mb: DEFAULT_MAX_SESSION_BYTES >> 20,
            max_peer_buffered_mb: (DEFAULT_MAX_PEER_BUFFERED_BYTES >> 20) as u64,
            max_sessions_per_peer: DEFAULT_MAX_SESSIONS_PER_PEER,
            timeout_secs: 600,
        }
    }
}

/// A pinned partner.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PeerEntry {
    pub name: String,
    /// `host:port` of the partner's federation endpoint.
    pub addr: String,
    /// Pinned certificate file, relative to the node directory.
    pub cert: PathBuf,
    /// SHA-256 fingerprint of the pinned certificate (for operators to compare by phone).
    pub fingerprint: String,
    /// A certificate being rotated out (`peers/<name>.previous.pem`): still accepted until
    /// `previous_until` (seconds since 1970, UTC), so the partner can switch keys within the
    /// overlap without a failed connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousCert>,
}

/// The certificate a rotation replaced, and the end of its overlap.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PreviousCert {
    pub cert: PathBuf,
    pub fingerprint: String,
    /// End of the overlap, in seconds since 1970 (UTC).
    pub until_unix_secs: u64,
}

/// An initialised node directory.
#[derive(Clone, Debug)]
pub struct NodeDir {
    root: PathBuf,
    pub config: NodeConfig,
}

fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), TransportError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(|e| TransportError::file(path, e))?;
    f.write_all(contents)
        .map_err(|e| TransportError::file(path, e))
}

impl NodeDir {
    /// Creates a node directory with a fresh identity. Refuses to touch a directory that
    /// already holds a configuration (an identity is never overwritten).
    pub fn init(
        root: impl AsRef<Path>,
        party: &PartyId,
        federation_listen: &str,
        api_listen: &str,
    ) -> Result<NodeDir, TransportError> {
        let root = root.as_ref().to_path_buf();
        let config_path = root.join(CONFIG_FILE);
        if config_path.exists() {
            return Err(TransportError::Invalid(format!(
                "{} already exists: this directory is already a node (its identity is kept; use another directory)",
                config_path.display()
            )));
        }
        for sub in ["identity", "peers", "data", "state"] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(|e| TransportError::file(root.join(sub), e))?;
        }
        let identity = Identity::generate(party)?;
        let config = NodeConfig {
            party: party.to_string(),
            federation_listen: federation_listen.to_string(),
            api_listen: api_listen.to_string(),
            data_dir: "data".into(),
            state_dir: "state".into(),
            key_file: "identity/key.pem".into(),
            cert_file: "identity/cert.pem".into(),
            limits: Limits::default(),
            auto_approve: false,
            peers: Vec::new(),
            other: toml::Table::new(),
        };
        write_file(
            &root.join(&config.key_file),
            identity.key_pem.as_bytes(),
            true,
        )?;
        write_file(
            &root.join(&config.cert_file),
            identity.cert_pem.as_bytes(),
            false,
        )?;
        let dir = NodeDir { root, config };
        dir.save()?;
        Ok(dir)
    }

    /// Opens an existing node directory.
    pub fn open(root: impl AsRef<Path>) -> Result<NodeDir, TransportError> {
        let root = root.as_ref().to_path_buf();
        let path = root.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            TransportError::file(
                &path,
                format!(
                    "{e} (run `ferry init --party <name> --dir {}` first)",
                    root.display()
                ),
            )
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|e| TransportError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        PartyId::new(&config.party).map_err(|e| TransportError::Config {
            path,
            reason: e.to_string(),
        })?;
        Ok(NodeDir { root, config })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, rel: &Path) -> PathBuf {
        if rel.is_absolute() {
            rel.to_path_buf()
        } else {
            self.root.join(rel)
        }
    }

    pub fn party(&self) -> PartyId {
        PartyId::new(&self.config.party).expect("validated when opened")
    }

    /// Writes `ferry.toml` atomically (temp file + rename), so a crash never leaves it half written.
    pub fn save(&self) -> Result<(), TransportError> {
        let path = self.root.join(CONFIG_FILE);
        let tmp = self.root.join(".ferry.toml.tmp");
        let text = toml::to_string_pretty(&self.config).map_err(|e| TransportError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, text).map_err(|e| TransportError::file(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| TransportError::file(&path, e))
    }

    pub fn identity(&self) -> Result<Identity, TransportError> {
        let key_path = self.path(&self.config.key_file);
        let cert_path = self.path(&self.config.cert_file);
        let key_pem =
            std::fs::read_to_string(&key_path).map_err(|e| TransportError::file(&key_path, e))?;
        let cert_pem =
            std::fs::read_to_string(&cert_path).map_err(|e| TransportError::file(&cert_path, e))?;
        Ok(Identity { key_pem, cert_pem })
    }

    /// Pins a partner's certificate (copied into `peers/<name>.pem`) and records its address.
    /// Re-adding a name replaces its address and certificate.
    pub fn add_peer(
        &mut self,
        name: &PartyId,
        addr: &str,
        cert_file: &Path,
    ) -> Result<PeerEntry, TransportError> {
        let pem =
            std::fs::read_to_string(cert_file).map_err(|e| TransportError::file(cert_file, e))?;
        parse_cert_pem(&pem).map_err(|e| TransportError::file(cert_file, e))?;
        self.add_peer_pem(name, addr, &pem)
    }

    /// [`NodeDir::add_peer`] with the certificate given as PEM text (from the API).
    pub fn add_peer_pem(
        &mut self,
        name: &PartyId,
        addr: &str,
        pem: &str,
    ) -> Result<PeerEntry, TransportError> {
        if name.as_str() == self.config.party {
            return Err(TransportError::Invalid(format!(
                "'{name}' is this node's own name"
            )));
        }
        check_address(addr)?;
        let der = parse_cert_pem(pem)?;
        let rel = PathBuf::from("peers").join(format!("{name}.pem"));
        self.write_peer_file(&rel, pem)?;
        if let Some(old) = self
            .config
            .peers
            .iter()
            .find(|p| p.name == name.as_str())
            .and_then(|p| p.previous.as_ref())
        {
            // Re-adding replaces every certificate, including one being rotated out.
            let _ = std::fs::remove_file(self.root.join(&old.cert));
        }
        let entry = PeerEntry {
            name: name.to_string(),
            addr: addr.to_string(),
            cert: rel,
            fingerprint: fingerprint(&der),
            previous: None,
        };
        self.config.peers.retain(|p| p.name != name.as_str());
        self.config.peers.push(entry.clone());
        self.save()?;
        Ok(entry)
    }

    /// Where [`NodeDir::prepare_next_identity`] puts the next key and certificate.
    pub fn next_identity_paths(&self) -> (PathBuf, PathBuf) {
        let id = self.root.join("identity");
        (id.join("next-key.pem"), id.join("next-cert.pem"))
    }

    /// The first step of rotating this node's own key: a new key (0600) and certificate next
    /// to the current ones, which stay in use. The partners pin the new certificate with
    /// `ferry peer rotate` (both accepted for the overlap); then
    /// [`NodeDir::activate_next_identity`] switches to it. Returns the new identity.
    pub fn prepare_next_identity(&self) -> Result<Identity, TransportError> {
        let (key, cert) = self.next_identity_paths();
        if key.exists() || cert.exists() {
            return Err(TransportError::Invalid(format!(
                "a next identity is already prepared ({}): give it to the partners, activate it, or delete both next-*.pem files to start over",
                cert.display()
            )));
        }
        let identity = Identity::generate(&self.party())?;
        write_file(&key, identity.key_pem.as_bytes(), true)?;
        write_file(&cert, identity.cert_pem.as_bytes(), false)?;
        Ok(identity)
    }

    /// Switches this node to the identity [`NodeDir::prepare_next_identity`] made (the node
    /// must be stopped: it reads its identity at start). The old certificate is kept as
    /// `identity/previous-cert.pem`; the old private key is deleted, since nothing may use it
    /// any more. Returns the new identity.
    pub fn activate_next_identity(&self) -> Result<Identity, TransportError> {
        let (next_key, next_cert) = self.next_identity_paths();
        if !next_key.exists() || !next_cert.exists() {
            return Err(TransportError::Invalid(format!(
                "no next identity in {}: prepare one first (ferry identity rotate)",
                self.root.join("identity").display()
            )));
        }
        let next = Identity {
            key_pem: std::fs::read_to_string(&next_key)
                .map_err(|e| TransportError::file(&next_key, e))?,
            cert_pem: std::fs::read_to_string(&next_cert)
                .map_err(|e| TransportError::file(&next_cert, e))?,
        };
        // Both halves must parse before anything is replaced.
        next.cert_der()?;
        next.key_der()?;
        let key = self.path(&self.config.key_file);
        let cert = self.path(&self.config.cert_file);
        let previous = self.root.join("identity").join("previous-cert.pem");
        std::fs::copy(&cert, &previous).map_err(|e| TransportError::file(&previous, e))?;
        std::fs::rename(&next_cert, &cert).map_err(|e| TransportError::file(&cert, e))?;
        std::fs::rename(&next_key, &key).map_err(|e| TransportError::file(&key, e))?;
        Ok(next)
    }

    /// Writes a certificate file under the node directory atomically (temporary file, then
    /// rename), so a crash never leaves a half-written pin.
    fn write_peer_file(&self, rel: &Path, pem: &str) -> Result<(), TransportError> {
        let dest = self.root.join(rel);
        let file_name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = self.root.join("peers").join(format!(".{file_name}.tmp"));
        std::fs::write(&tmp, pem).map_err(|e| TransportError::file(&tmp, e))?;
        std::fs::rename(&tmp, &dest).map_err(|e| TransportError::file(&dest, e))
    }

    /// Unpins a partner: its entry leaves `ferry.toml` and its certificate files are moved to
    /// `peers/removed/` (kept, so that an auditor can still see what was trusted). Returns the
    /// entry it had.
    pub fn remove_peer(&mut self, name: &PartyId) -> Result<PeerEntry, TransportError> {
        let Some(pos) = self
            .config
            .peers
            .iter()
            .position(|p| p.name == name.as_str())
        else {
            return Err(TransportError::Invalid(format!(
                "'{name}' is not a partner of this node"
            )));
        };
        let entry = self.config.peers.remove(pos);
        self.save()?;
        let removed = self.root.join("peers").join("removed");
        std::fs::create_dir_all(&removed).map_err(|e| TransportError::file(&removed, e))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut files = vec![entry.cert.clone()];
        files.extend(entry.previous.as_ref().map(|p| p.cert.clone()));
        for rel in files {
            let from = self.root.join(&rel);
            let file_name = rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let to = removed.join(format!("{stamp}-{file_name}"));
            if let Err(e) = std::fs::rename(&from, &to) {
                tracing::warn!("could not move {} to {}: {e}", from.display(), to.display());
            }
        }
        Ok(entry)
    }

    /// Starts a rotation of a partner's certificate: `new_cert_pem` becomes its pinned
    /// certificate and the current one is kept as `previous`, accepted until
    /// `overlap_until_unix_secs`. A rotation during another rotation's overlap drops the
    /// oldest certificate. `addr`, when given, replaces the partner's address. Returns the
    /// updated entry and the new certificate (DER).
    pub fn rotate_peer(
        &mut self,
        name: &PartyId,
        new_cert_pem: &str,
        overlap_until_unix_secs: u64,
        addr: Option<&str>,
    ) -> Result<(PeerEntry, Vec<u8>), TransportError> {
        if let Some(a) = addr {
            check_address(a)?;
        }
        let der = parse_cert_pem(new_cert_pem)?;
        let new_fingerprint = fingerprint(&der);
        let Some(idx) = self
            .config
            .peers
            .iter()
            .position(|p| p.name == name.as_str())
        else {
            return Err(TransportError::Invalid(format!(
                "'{name}' is not a partner of this node: add it first"
            )));
        };
        if self.config.peers[idx].fingerprint == new_fingerprint {
            return Err(TransportError::Invalid(format!(
                "the new certificate of '{name}' is the one already pinned (fingerprint {new_fingerprint})"
            )));
        }
        let current_rel = self.config.peers[idx].cert.clone();
        let previous_rel = PathBuf::from("peers").join(format!("{name}.previous.pem"));
        let current_pem = {
            let path = self.root.join(&current_rel);
            std::fs::read_to_string(&path).map_err(|e| TransportError::file(&path, e))?
        };
        self.write_peer_file(&previous_rel, &current_pem)?;
        let new_rel = PathBuf::from("peers").join(format!("{name}.pem"));
        self.write_peer_file(&new_rel, new_cert_pem)?;
        let entry = &mut self.config.peers[idx];
        entry.previous = Some(PreviousCert {
            cert: previous_rel,
            fingerprint: entry.fingerprint.clone(),
            until_unix_secs: overlap_until_unix_secs,
        });
        entry.cert = new_rel;
        entry.fingerprint = new_fingerprint;
        if let Some(a) = addr {
            entry.addr = a.to_string();
        }
        let entry = entry.clone();
        self.save()?;
        Ok((entry, der.to_vec()))
    }

    /// The certificates being rotated out whose overlap has not ended: party, DER, end.
    pub fn previous_peer_certs(
        &self,
    ) -> Result<Vec<(PartyId, Vec<u8>, std::time::SystemTime)>, TransportError> {
        let now = std::time::SystemTime::now();
        let mut out = Vec::new();
        for p in &self.config.peers {
            let Some(prev) = &p.previous else { continue };
            let until =
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(prev.until_unix_secs);
            if until <= now {
                continue;
            }
            let der = self.read_pinned(&prev.cert, &prev.fingerprint, "previous fingerprint")?;
            out.push((peer_name(p)?, der, until));
        }
        Ok(out)
    }

    /// Reads and checks every pinned certificate.
    pub fn peer_certs(&self) -> Result<Vec<(PartyId, String, Vec<u8>)>, TransportError> {
        self.config
            .peers
            .iter()
            .map(|p| {
                let der = self.read_pinned(&p.cert, &p.fingerprint, "fingerprint")?;
                Ok((peer_name(p)?, p.addr.clone(), der))
            })
            .collect()
    }

    /// A pinned certificate file (DER), checked against the fingerprint ferry.toml records
    /// for it (`which`: how the error names that fingerprint).
    fn read_pinned(
        &self,
        rel: &Path,
        expected: &str,
        which: &str,
    ) -> Result<Vec<u8>, TransportError> {
        let path = self.path(rel);
        let pem = std::fs::read_to_string(&path).map_err(|e| TransportError::file(&path, e))?;
        let der = parse_cert_pem(&pem)?;
        if fingerprint(&der) != expected {
            return Err(TransportError::file(
                &path,
                format!("certificate does not match the {which} recorded in ferry.toml"),
            ));
        }
        Ok(der.to_vec())
    }
}

/// A peer entry's name as a party id.
fn peer_name(p: &PeerEntry) -> Result<PartyId, TransportError> {
    PartyId::new(&p.name).map_err(|e| TransportError::Invalid(e.to_string()))
}

/// Checks a `host:port` address (an IP address or a host name, and a port).
pub fn check_address(addr: &str) -> Result<(), TransportError> {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    match addr.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => Ok(()),
        _ => Err(TransportError::Invalid(format!(
            "'{addr}' is not a host:port address"
        ))),
    }
}

/// First port [`unused_loopback_port`] hands out. The range it uses,
/// `LOOPBACK_PORT_BASE..LOOPBACK_PORT_BASE + LOOPBACK_PORT_SPAN`, lies below Linux's default
/// ephemeral range (32768–60999), so no outgoing connection can be given the port between the
/// moment it is chosen and the moment a node binds it.
pub const LOOPBACK_PORT_BASE: u16 = 16_000;
/// How many ports [`unused_loopback_port`] chooses from.
pub const LOOPBACK_PORT_SPAN: u16 = 16_000;
/// Ports each process may take before its choices overlap the next process id's.
const LOOPBACK_PORTS_PER_PROCESS: u32 = 16;

/// A loopback TCP port nobody listens on now, for node directories made on the fly (the demo,
/// the launcher, tests) whose addresses must be written into each other's configuration
/// before any node starts.
///
/// Asking the kernel for port 0 and closing the socket is not enough: that port comes from the
/// ephemeral range, and any outgoing connection (there are many while tests run side by side)
/// may be given it before the node binds it. This picks below that range instead, starting
/// from a slot derived from the process id so that processes running at once try different
/// ports, and skips every port it cannot bind.
pub fn unused_loopback_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    let slot = (std::process::id() % 1000) * LOOPBACK_PORTS_PER_PROCESS;
    for _ in 0..LOOPBACK_PORT_SPAN {
        let n = TAKEN.fetch_add(1, Ordering::Relaxed);
        let offset = slot.wrapping_add(n) % u32::from(LOOPBACK_PORT_SPAN);
        // The offset is below LOOPBACK_PORT_SPAN, so the sum stays below 32 000.
        let port = LOOPBACK_PORT_BASE + offset as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!(
            "every loopback port from {LOOPBACK_PORT_BASE} to {} is in use",
            LOOPBACK_PORT_BASE + LOOPBACK_PORT_SPAN - 1
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_private_key_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let bank = PartyId::new("bank").unwrap();
        let node = NodeDir::init(dir.path(), &bank, "127.0.0.1:7001", "127.0.0.1:8001").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("identity/key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let before = node.identity().unwrap().fingerprint().unwrap();
        assert!(NodeDir::init(dir.path(), &bank, "127.0.0.1:7001", "127.0.0.1:8001").is_err());
        let reopened = NodeDir::open(dir.path()).unwrap();
        assert_eq!(reopened.config, node.config);
        assert_eq!(reopened.identity().unwrap().fingerprint().unwrap(), before);
    }

    #[test]
    fn a_ferry_toml_without_the_newer_limits_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let bank = PartyId::new("bank").unwrap();
        NodeDir::init(dir.path(), &bank, "127.0.0.1:7001", "127.0.0.1:8001").unwrap();
        // The [limits] table as `ferry init` wrote it before the per-peer limits existed.
        let path = dir.path().join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text.find("[limits]").unwrap();
        let end = text[start + 1..]
            .find("\n[")
            .map_or(text.len(), |i| start + 1 + i);
        let old = format!(
            "{}[limits]\nmax_message_mb = 1024\nmax_session_mb = 65536\ntimeout_secs = 600\n{}",
            &text[..start],
            &text[end..]
        );
        std::fs::write(&path, old).unwrap();
        let limits = NodeDir::open(dir.path()).unwrap().config.limits;
        assert_eq!(limits.max_message_mb, 1024);
        assert_eq!(limits.max_session_mb, 65536);
        assert_eq!(limits.max_peer_buffered_mb, 1024);
        assert_eq!(
            limits.max_sessions_per_peer,
            crate::transport::DEFAULT_MAX_SESSIONS_PER_PEER
        );
        // A node directory's limits reach the transport configuration.
        let cfg =
            crate::TransportConfig::from_node_dir(&NodeDir::open(dir.path()).unwrap()).unwrap();
        assert_eq!(cfg.max_message_bytes, 1 << 30);
        assert_eq!(cfg.max_peer_buffered_bytes, 1 << 30);
    }

    #[test]
    fn peers_are_pinned_by_fingerprint() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let mut bank = NodeDir::init(
            a.path(),
            &PartyId::new("bank").unwrap(),
            "127.0.0.1:7001",
            "127.0.0.1:8001",
        )
        .unwrap();
        let telco = NodeDir::init(
            b.path(),
            &PartyId::new("telco").unwrap(),
            "127.0.0.1:7002",
            "127.0.0.1:8002",
        )
        .unwrap();
        let entry = bank
            .add_peer(
                &telco.party(),
                "127.0.0.1:7002",
                &b.path().join("identity/cert.pem"),
            )
            .unwrap();
        assert_eq!(
            entry.fingerprint,
            telco.identity().unwrap().fingerprint().unwrap()
        );
        let certs = bank.peer_certs().unwrap();
        assert_eq!(certs.len(), 1);
        assert!(
            bank.add_peer(
                &bank.party(),
                "127.0.0.1:1",
                &b.path().join("identity/cert.pem")
            )
            .is_err()
        );
        assert!(
            bank.add_peer(
                &telco.party(),
                "nonsense",
                &b.path().join("identity/cert.pem")
            )
            .is_err()
        );
        assert!(
            bank.add_peer(
                &telco.party(),
                "127.0.0.1:7002",
                &b.path().join("ferry.toml")
            )
            .is_err()
        );
        // A swapped certificate file no longer matches the recorded fingerprint.
        std::fs::copy(
            a.path().join("identity/cert.pem"),
            a.path().join("peers/telco.pem"),
        )
        .unwrap();
        assert!(NodeDir::open(a.path()).unwrap().peer_certs().is_err());
    }

    #[test]
    fn saving_keeps_tables_other_layers_own() {
        let tmp = tempfile::tempdir().unwrap();
        let party = PartyId::new("bank").unwrap();
        let dir = NodeDir::init(tmp.path(), &party, "127.0.0.1:1", "127.0.0.1:2").unwrap();
        let file = tmp.path().join(CONFIG_FILE);
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str("\n[policy]\nmin_paillier_bits = 3072\n");
        std::fs::write(&file, text).unwrap();
        let reopened = NodeDir::open(tmp.path()).unwrap();
        reopened.save().unwrap();
        let saved = std::fs::read_to_string(&file).unwrap();
        assert!(
            saved.contains("[policy]") && saved.contains("min_paillier_bits = 3072"),
            "{saved}"
        );
        drop(dir);
    }

    #[test]
    fn loopback_ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        // One port held by someone else is skipped, not handed out.
        let first = unused_loopback_port().unwrap();
        let _held = std::net::TcpListener::bind(("127.0.0.1", first + 1));
        let ports: Vec<u16> = (0..40).map(|_| unused_loopback_port().unwrap()).collect();
        let mut seen = std::collections::HashSet::new();
        for p in std::iter::once(first).chain(ports.iter().copied()) {
            assert!(seen.insert(p), "port {p} handed out twice");
            assert!((LOOPBACK_PORT_BASE..LOOPBACK_PORT_BASE + LOOPBACK_PORT_SPAN).contains(&p));
            assert!(p < 32_768, "port {p} is in the ephemeral range");
        }
        if _held.is_ok() {
            assert!(
                !ports.contains(&(first + 1)),
                "a port in use was handed out"
            );
        }
        for p in ports {
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }
}
