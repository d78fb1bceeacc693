//! Partners at run time: adding, removing and rotating a partner's pinned certificate on a
//! running node (API `/api/v1/partners`, CLI `ferry peer ...`).
//!
//! `ferry.toml` and `peers/*.pem` stay the record (written first, so a node restarted after a
//! change comes back with it); the transport's pins follow at once:
//!
//! * **add**: the partner is reachable and may connect from the next handshake; it can take
//!   part in jobs and projects without a restart.
//! * **remove**: its certificate is unpinned, its open connections are cut, every wait for a
//!   message from it fails with the reason, and this node's unfinished jobs with it are
//!   cancelled (the other partners are told). Its certificate files are kept under
//!   `peers/removed/` for the record.
//! * **rotate**: the partner made a new key. Its new certificate is pinned and the old one is
//!   still accepted until the overlap ends (default 24 hours), so the partner can switch keys
//!   at any moment of the overlap; connections made with the old one are cut when it ends.
//!   A node restarted during the overlap restores it from `ferry.toml`.

use crate::node::{Node, NodeError};
use ferry_context::PartyId;
use ferry_transport::{NodeDir, PeerEntry};
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest rotation overlap accepted: a stale certificate should not stay valid for long.
pub const MAX_OVERLAP_HOURS: f64 = 24.0 * 30.0;
/// Overlap when none is given.
pub const DEFAULT_OVERLAP_HOURS: f64 = 24.0;
/// Largest certificate PEM accepted from a request.
pub const MAX_CERT_PEM_BYTES: usize = 64 * 1024;

/// Serialises edits of `ferry.toml` (the file is read, changed and written whole).
static EDITS: Mutex<()> = Mutex::new(());

/// A partner as the API and the CLI show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PartnerView {
    pub name: String,
    pub addr: String,
    pub fingerprint: String,
    /// Whether the running transport has it pinned (false only if `ferry.toml` was edited by
    /// hand while the node runs).
    pub pinned: bool,
    /// The certificate being rotated out and the end of its overlap, while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<String>,
    /// Seconds since anything (a message, a chunk, an acknowledgement, a heartbeat, the answer
    /// to an idle keep-alive probe) last came from the partner; `None` if nothing has since
    /// this node started.
    pub last_heard_secs: Option<f64>,
    /// Heard from within `[liveness] window_secs`, and its last keep-alive probe (if any since)
    /// did not fail. Idle partners are probed every `heartbeat_secs` ([`crate::liveness`]), so
    /// a reachable partner is connected whether or not it shares work with this node.
    pub connected: bool,
    /// Why the last probe of the partner failed (connection refused, certificate mismatch, no
    /// answer), while nothing has been heard from it since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable_error: Option<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn party_name(name: &str) -> Result<PartyId, NodeError> {
    PartyId::new(name).map_err(|e| NodeError::Invalid(format!("partner name: {e}")))
}

fn check_pem(pem: &str) -> Result<(), NodeError> {
    if pem.len() > MAX_CERT_PEM_BYTES {
        return Err(NodeError::Invalid(format!(
            "cert_pem is {} bytes, above the limit of {MAX_CERT_PEM_BYTES}",
            pem.len()
        )));
    }
    Ok(())
}

/// A request's mistake (a bad address, a certificate that is not one, an unknown name) is the
/// caller's to fix; a file that cannot be written is the node's.
fn request_error(e: ferry_transport::TransportError) -> NodeError {
    use ferry_transport::TransportError as E;
    match e {
        E::Invalid(m) => NodeError::Invalid(m),
        E::Identity(m) => NodeError::Invalid(format!("cert_pem: {m}")),
        other => NodeError::Transport(other),
    }
}

impl Node {
    /// The node directory as it is on disk now (partners changed since the start included).
    fn current_dir(&self) -> Result<NodeDir, NodeError> {
        NodeDir::open(self.dir().root()).map_err(NodeError::Transport)
    }

    /// The partners in `ferry.toml`, with the state of their pins.
    pub fn partner_list(&self) -> Result<Vec<PartnerView>, NodeError> {
        let dir = self.current_dir()?;
        let now = now_secs();
        let window = self.liveness_settings().window();
        // When the partner was last heard from or answered a probe, and why the last probe
        // failed if nothing came since.
        let reach = |name: &str| -> (Option<std::time::Instant>, Option<String>) {
            let Ok(id) = PartyId::new(name) else {
                return (None, None);
            };
            let r = self.reach(&id);
            let heard = self.transport().last_heard(&id).max(r.answered);
            let error = r
                .failed
                .filter(|(at, _)| heard.is_none_or(|h| *at > h))
                .map(|(_, e)| e);
            (heard, error)
        };
        Ok(dir
            .config
            .peers
            .iter()
            .map(|p| {
                let (heard, error) = reach(&p.name);
                let previous = p
                    .previous
                    .as_ref()
                    .filter(|prev| prev.until_unix_secs > now);
                PartnerView {
                    name: p.name.clone(),
                    addr: p.addr.clone(),
                    fingerprint: p.fingerprint.clone(),
                    pinned: PartyId::new(&p.name)
                        .map(|id| self.transport().is_peer(&id))
                        .unwrap_or(false),
                    previous_fingerprint: previous.map(|prev| prev.fingerprint.clone()),
                    previous_valid_until: previous.map(|prev| {
                        ferry_store::time::format_unix_millis(
                            (prev.until_unix_secs as i64).saturating_mul(1000),
                        )
                    }),
                    last_heard_secs: heard.map(|t| t.elapsed().as_secs_f64()),
                    connected: error.is_none() && heard.is_some_and(|t| t.elapsed() <= window),
                    reachable_error: error,
                }
            })
            .collect())
    }

    /// Whether `party` is a partner of this node now (pinned in the running transport).
    pub fn is_partner(&self, party: &PartyId) -> bool {
        self.transport().is_peer(party)
    }

    /// The names of this node's partners now.
    pub fn partner_names(&self) -> Vec<String> {
        self.transport()
            .peers()
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    /// Pins a new partner and makes it reachable at once. A name already pinned is refused:
    /// changing a partner's certificate is a rotation, and its address changes with it.
    pub fn add_partner(
        &self,
        name: &str,
        addr: &str,
        cert_pem: &str,
    ) -> Result<PeerEntry, NodeError> {
        let party = party_name(name)?;
        check_pem(cert_pem)?;
        let _edit = EDITS.lock().unwrap_or_else(|p| p.into_inner());
        let mut dir = self.current_dir()?;
        if dir.config.peers.iter().any(|p| p.name == party.as_str()) {
            return Err(NodeError::Invalid(format!(
                "'{party}' is already a partner: rotate its certificate (ferry peer rotate) or remove it first"
            )));
        }
        let entry = dir
            .add_peer_pem(&party, addr, cert_pem)
            .map_err(request_error)?;
        let certs = dir.peer_certs()?;
        let Some((_, _, der)) = certs.into_iter().find(|(p, _, _)| *p == party) else {
            return Err(NodeError::Invalid(format!(
                "'{party}' was written to ferry.toml but cannot be read back"
            )));
        };
        self.transport()
            .add_peer(party.clone(), entry.addr.clone(), der);
        tracing::info!(
            "pinned partner '{party}' at {} ({})",
            entry.addr,
            entry.fingerprint
        );
        Ok(entry)
    }

    /// Starts a rotation of `name`'s certificate (see the module docs). `overlap_hours`
    /// defaults to [`DEFAULT_OVERLAP_HOURS`]; `addr` optionally moves the partner.
    pub fn rotate_partner(
        &self,
        name: &str,
        cert_pem: &str,
        overlap_hours: Option<f64>,
        addr: Option<&str>,
    ) -> Result<PeerEntry, NodeError> {
        let party = party_name(name)?;
        check_pem(cert_pem)?;
        let hours = overlap_hours.unwrap_or(DEFAULT_OVERLAP_HOURS);
        if !(0.0..=MAX_OVERLAP_HOURS).contains(&hours) {
            return Err(NodeError::Invalid(format!(
                "overlap_hours = {hours} is outside [0, {MAX_OVERLAP_HOURS}]"
            )));
        }
        let overlap = Duration::from_secs_f64(hours * 3600.0);
        let until = now_secs().saturating_add(overlap.as_secs());
        let _edit = EDITS.lock().unwrap_or_else(|p| p.into_inner());
        let mut dir = self.current_dir()?;
        let (entry, der) = dir
            .rotate_peer(&party, cert_pem, until, addr)
            .map_err(request_error)?;
        let until_time = UNIX_EPOCH + Duration::from_secs(until);
        if !self
            .transport()
            .rotate_peer(&party, der.clone(), until_time, addr.map(str::to_string))
        {
            // Pinned in ferry.toml but not in the transport (edited by hand while running).
            self.transport()
                .add_peer(party.clone(), entry.addr.clone(), der);
        }
        tracing::info!(
            "rotating the certificate of '{party}': now {}, the previous one accepted for {hours} h",
            entry.fingerprint
        );
        Ok(entry)
    }

    /// Removes a partner at once (see the module docs). Returns the entry it had and the ids
    /// of the jobs cancelled because of it.
    pub fn remove_partner(
        &self,
        name: &str,
        reason: &str,
    ) -> Result<(PeerEntry, Vec<String>), NodeError> {
        let party = party_name(name)?;
        let _edit = EDITS.lock().unwrap_or_else(|p| p.into_inner());
        let mut dir = self.current_dir()?;
        let entry = dir.remove_peer(&party).map_err(request_error)?;
        let why = if reason.trim().is_empty() {
            format!(
                "partner '{party}' was removed from the partners of {}",
                self.party()
            )
        } else {
            format!(
                "partner '{party}' was removed from the partners of {}: {}",
                self.party(),
                reason.trim()
            )
        };
        // Cancelled first, while the partner is still reachable, so that it hears of it too.
        let mut cancelled = Vec::new();
        for job in self.store().list_jobs()? {
            if job.status.is_terminal() || !self.job_involves(&job.spec_json, &party) {
                continue;
            }
            match self.cancel(&job.id, &why) {
                Ok(()) => cancelled.push(job.id),
                Err(e) => tracing::warn!("cannot cancel job {} with '{party}': {e}", job.id),
            }
        }
        if !cancelled.is_empty() {
            // Give the cancellations a moment to reach the partner before its link goes.
            let _ = ferry_context::Transport::flush(
                self.transport().as_ref(),
                crate::node::CONTROL_SESSION,
                Duration::from_secs(2),
            );
        }
        self.transport().remove_peer(&party, &why);
        tracing::info!(
            "removed partner '{party}'; cancelled {} job(s)",
            cancelled.len()
        );
        Ok((entry, cancelled))
    }

    fn job_involves(&self, spec_json: &str, party: &PartyId) -> bool {
        crate::dsl::JobSpec::parse(spec_json)
            .ok()
            .and_then(|s| s.roster().ok())
            .is_some_and(|r| r.role_of(party).is_some())
    }

    /// The certificates `party` may sign with now: its pinned one and, during a rotation's
    /// overlap, the previous one (audit checkpoints are verified against each).
    pub(crate) fn partner_certs(&self, party: &PartyId) -> Vec<Vec<u8>> {
        let Ok(dir) = self.current_dir() else {
            return Vec::new();
        };
        let mut out: Vec<Vec<u8>> = dir
            .peer_certs()
            .unwrap_or_default()
            .into_iter()
            .filter(|(p, _, _)| p == party)
            .map(|(_, _, der)| der)
            .collect();
        out.extend(
            dir.previous_peer_certs()
                .unwrap_or_default()
                .into_iter()
                .filter(|(p, _, _)| p == party)
                .map(|(_, der, _)| der),
        );
        out
    }
}
