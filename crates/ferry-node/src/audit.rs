//! The node's action log (issue 13): every state-changing action is an entry of a hash chain
//! in the store ([`ferry_store::actions`]); the node signs checkpoints of the chain head and
//! sends them to its partners, and keeps the checkpoints its partners send.
//!
//! Who records what:
//! * the API records every request that is not a read (`GET`, `HEAD`, `OPTIONS`) once the
//!   request is authenticated (`crate::api`'s action layer): actor, method and route,
//!   path parameters and the request's named fields, the client's address, the status and
//!   the error;
//! * the node records what partners make it do: a proposal accepted or refused (actor
//!   `party:<name>`), and every job that reaches its final status on this node (actor `node`).
//!
//! Checkpoints are signed every `[audit] checkpoint_every_entries` entries, every
//! `checkpoint_every_minutes` minutes if there are new entries, and on demand
//! (`POST /api/v1/audit/checkpoint`, `ferry audit checkpoint`), and sent to every pinned
//! partner as [`Control::AuditCheckpoint`]. A received checkpoint is kept only if its
//! signature verifies with the certificate this node pinned for the sender; a partner may send
//! at most [`MAX_CHECKPOINTS_PER_MINUTE`] a minute.
//!
//! Under the GM suite (`[crypto] suite = "gm"`) the node signs its checkpoints with its SM2 key
//! (SM2 with SM3), and each carries the SM2 public key with a key binding: the identity key's
//! ECDSA P-256 signature over "party P's SM2 checkpoint key is K" ([`ferry_store::actions`]).
//! The receiver checks the binding with the pinned certificate, then the SM2 signature with the
//! bound key. The key is bound in every checkpoint rather than exchanged when partners pin each
//! other: the pinned certificate stays the only trust root, pinning and certificate rotation
//! stay as they are (a binding is checked with whichever certificate is pinned at the time,
//! both during a rotation's overlap), and a node that switches suite needs no new pinning.
//! The message is versioned by the checkpoint's `algorithm` (absent: ECDSA P-256, statement
//! version 1), so default-suite nodes and checkpoints from before keep verifying.

use crate::node::{Control, Node, NodeError};
use ferry_context::PartyId;
use ferry_store::{ChainReport, Checkpoint, JobStatus, NewAction, Receipt};
use ferry_transport::NodeDir;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Checkpoints one partner may send per minute; more are dropped (and logged). A node signs
/// at most one per new head, so an honest partner stays far below.
pub const MAX_CHECKPOINTS_PER_MINUTE: usize = 60;

/// How often the checkpoint timer looks at the clock.
const TIMER_TICK: Duration = Duration::from_millis(500);

/// `[audit]` of `ferry.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Sign and send a checkpoint after this many new entries.
    pub checkpoint_every_entries: u64,
    /// Sign and send a checkpoint this often while there are new entries.
    pub checkpoint_every_minutes: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            checkpoint_every_entries: 100,
            checkpoint_every_minutes: 10,
        }
    }
}

impl AuditSettings {
    /// The `[audit]` table of the node's configuration (defaults without one).
    pub fn from_config(tables: &toml::Table) -> Result<AuditSettings, String> {
        let settings: AuditSettings = match tables.get("audit") {
            None => AuditSettings::default(),
            Some(t) => t
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("[audit]: {e}"))?,
        };
        if settings.checkpoint_every_entries == 0 || settings.checkpoint_every_minutes == 0 {
            return Err(
                "[audit] checkpoint_every_entries and checkpoint_every_minutes must be positive"
                    .into(),
            );
        }
        Ok(settings)
    }
}

/// A checkpoint this node signed, and the partners it was sent to (sending is asynchronous:
/// the transport delivers it when the partner is reachable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentCheckpoint {
    pub checkpoint: Checkpoint,
    pub sent_to: Vec<String>,
}

/// The node's checkpoint bookkeeping (kept by [`Node`]).
pub struct AuditTrail {
    settings: AuditSettings,
    /// Entries recorded since the last checkpoint.
    since_checkpoint: AtomicU64,
    last_checkpoint: Mutex<Instant>,
    /// Serialises signing and sending, so partners get checkpoints in order.
    signing: Mutex<()>,
    stopped: AtomicBool,
    /// When each partner's recent checkpoints arrived (rate limit).
    received: Mutex<HashMap<PartyId, VecDeque<Instant>>>,
}

impl AuditTrail {
    pub(crate) fn new(settings: AuditSettings) -> Self {
        AuditTrail {
            settings,
            since_checkpoint: AtomicU64::new(0),
            last_checkpoint: Mutex::new(Instant::now()),
            signing: Mutex::new(()),
            stopped: AtomicBool::new(false),
            received: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &AuditSettings {
        &self.settings
    }

    /// Stops the checkpoint timer (the node is shutting down).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Whether `from` may send another checkpoint now (and counts this one).
    fn admit(&self, from: &PartyId) -> bool {
        let now = Instant::now();
        let mut received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        let recent = received.entry(from.clone()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            recent.pop_front();
        }
        if recent.len() >= MAX_CHECKPOINTS_PER_MINUTE {
            return false;
        }
        recent.push_back(now);
        true
    }
}

/// Starts the thread that signs a checkpoint every `checkpoint_every_minutes` while there are
/// new entries. It ends when the node shuts down or is dropped.
pub(crate) fn spawn_checkpoint_timer(node: &Arc<Node>) -> Result<(), NodeError> {
    let weak: Weak<Node> = Arc::downgrade(node);
    let every = Duration::from_secs(60 * node.audit().settings.checkpoint_every_minutes);
    std::thread::Builder::new()
        .name("ferry-audit".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TIMER_TICK);
                let Some(node) = weak.upgrade() else {
                    return;
                };
                let trail = node.audit();
                if trail.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let due = trail
                    .last_checkpoint
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .elapsed()
                    >= every;
                if due && trail.since_checkpoint.load(Ordering::SeqCst) > 0 {
                    if let Err(e) = node.audit_checkpoint() {
                        tracing::error!("cannot sign a checkpoint of the action log: {e}");
                    }
                } else if due {
                    *trail
                        .last_checkpoint
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Instant::now();
                }
            }
        })
        .map_err(|e| NodeError::Invalid(format!("cannot start the audit thread: {e}")))?;
    Ok(())
}

impl Node {
    /// Records an action. A failure to record is logged, never returned: the action itself
    /// already happened.
    pub fn record_action(&self, action: &NewAction) {
        if let Err(e) = self.store().record_action(action) {
            tracing::error!(
                actor = %action.actor,
                action = %action.action,
                object = %action.object,
                "cannot record an action in the audit log: {e}"
            );
            return;
        }
        let trail = self.audit();
        let since = trail.since_checkpoint.fetch_add(1, Ordering::SeqCst) + 1;
        if since >= trail.settings.checkpoint_every_entries
            && let Err(e) = self.audit_checkpoint()
        {
            tracing::error!("cannot sign a checkpoint of the action log: {e}");
        }
    }

    /// A partner's proposal, accepted (`Ok(note)`) or refused (`Err(reason)`).
    pub(crate) fn audit_proposal(&self, from: &PartyId, job_id: &str, result: Result<&str, &str>) {
        let action = NewAction::ok(
            format!("party:{from}"),
            "job.propose",
            format!("job={}", job_id.escape_debug()),
            "federation",
        );
        self.record_action(&match result {
            Ok(note) => action.with_detail(note),
            Err(reason) => action.failed(format!("refused: {reason}")),
        });
    }

    /// A job reached its final status on this node.
    pub(crate) fn audit_job_end(&self, job_id: &str, status: JobStatus, reason: Option<&str>) {
        let action = NewAction::ok("node", "job.finish", format!("job={job_id}"), "local");
        let detail = match reason {
            Some(r) => format!("{}: {r}", status.as_str()),
            None => status.as_str().to_string(),
        };
        self.record_action(&if status == JobStatus::Succeeded {
            action.with_detail(detail)
        } else {
            action.failed(detail)
        });
    }

    /// Signs a checkpoint of the chain head and sends it to every pinned partner. `None`
    /// while the log is empty.
    pub fn audit_checkpoint(&self) -> Result<Option<SentCheckpoint>, NodeError> {
        let trail = self.audit();
        let _signing = trail.signing.lock().unwrap_or_else(|p| p.into_inner());
        // Entries recorded from here on count towards the next checkpoint.
        trail.since_checkpoint.store(0, Ordering::SeqCst);
        *trail
            .last_checkpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let Some(cp) = self.store().sign_checkpoint(self.party().as_str())? else {
            return Ok(None);
        };
        let msg = Control::AuditCheckpoint {
            checkpoint: cp.clone(),
        };
        let mut sent_to = Vec::new();
        for (partner, _) in self.pinned_certs() {
            self.send(&partner, &msg);
            sent_to.push(partner.to_string());
        }
        Ok(Some(SentCheckpoint {
            checkpoint: cp,
            sent_to,
        }))
    }

    /// The chain recomputed and compared with this node's own checkpoints.
    pub fn audit_verify(&self) -> Result<ChainReport, NodeError> {
        Ok(self.store().verify_actions(&[])?)
    }

    /// Every pinned partner and its certificate, as `ferry.toml` lists them now (partners
    /// added since the node started included).
    fn pinned_certs(&self) -> Vec<(PartyId, Vec<u8>)> {
        let current = NodeDir::open(self.dir().root()).and_then(|d| d.peer_certs());
        let certs = match current {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    "cannot read the pinned certificates from ferry.toml ({e}); using those the node started with"
                );
                self.dir().peer_certs().unwrap_or_default()
            }
        };
        certs
            .into_iter()
            .map(|(party, _addr, der)| (party, der))
            .collect()
    }

    /// A partner's checkpoint: kept if it is the sender's own and its signature verifies with
    /// the certificate pinned for the sender (an SM2 checkpoint: its key binding with that
    /// certificate, then the SM2 signature with the bound key). A refusal is logged with the
    /// party and the check that failed.
    pub(crate) fn on_audit_checkpoint(&self, from: &PartyId, cp: Checkpoint) {
        if cp.party != from.as_str() {
            tracing::warn!(
                "refused an audit checkpoint from '{from}': it is of party '{}'",
                cp.party.escape_debug()
            );
            return;
        }
        if !self.audit().admit(from) {
            tracing::warn!(
                "dropped an audit checkpoint from '{from}': more than {MAX_CHECKPOINTS_PER_MINUTE} in a minute"
            );
            return;
        }
        // During a rotation's overlap the partner may still sign with its previous key.
        let certs = self.partner_certs(from);
        if certs.is_empty() {
            tracing::warn!("refused an audit checkpoint from '{from}': no pinned certificate");
            return;
        }
        let mut outcome = self.store().record_partner_checkpoint(&cp, &certs[0]);
        for cert in &certs[1..] {
            if outcome.is_ok() {
                break;
            }
            outcome = self.store().record_partner_checkpoint(&cp, cert);
        }
        match outcome {
            Ok(Receipt::Stored | Receipt::Duplicate) => {}
            Ok(Receipt::Conflict { earlier_hash }) => tracing::error!(
                "partner '{from}' signed two different hashes for entry {} of its action log \
                 ({earlier_hash} before, {} now): its log was rewritten; both checkpoints are kept",
                cp.seq,
                cp.hash
            ),
            Err(e) => tracing::warn!("refused an audit checkpoint from '{from}': {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_and_refuse_zero() {
        assert_eq!(
            AuditSettings::from_config(&toml::Table::new()).unwrap(),
            AuditSettings::default()
        );
        let t: toml::Table = toml::from_str("[audit]\ncheckpoint_every_entries = 0").unwrap();
        assert!(AuditSettings::from_config(&t).is_err());
        let t: toml::Table = toml::from_str("[audit]\nevery = 3").unwrap();
        let err = AuditSettings::from_config(&t).unwrap_err();
        assert!(err.contains("[audit]"), "{err}");
    }

    #[test]
    fn a_partner_may_send_a_bounded_number_of_checkpoints() {
        let trail = AuditTrail::new(AuditSettings::default());
        let bank = PartyId::new("bank").unwrap();
        let telco = PartyId::new("telco").unwrap();
        for _ in 0..MAX_CHECKPOINTS_PER_MINUTE {
            assert!(trail.admit(&bank));
        }
        assert!(!trail.admit(&bank));
        assert!(trail.admit(&telco), "the limit is per partner");
    }
}
