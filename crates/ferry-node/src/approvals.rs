//! What waits on a person: partners' proposals this node has not yet approved or rejected,
//! with every security-relevant setting, and their expiry.
//!
//! A proposal left undecided for `[approvals] expire_hours` (default 72) is refused on this
//! node's behalf with the reason "expired", and the proposer is told, so nothing waits forever
//! and a stale proposal cannot be approved by accident weeks later.

use crate::node::{Control, Node, NodeError};
use ferry_context::PartyId;
use ferry_store::JobStatus;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `[approvals]` of `ferry.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalSettings {
    /// Hours a partner's proposal may wait for a decision (fractions allowed).
    pub expire_hours: f64,
    /// Four eyes: a job submitted (or re-run) on this node waits for a second person with the
    /// `approve` permission before it is proposed to the partners.
    pub own_jobs_need_approval: bool,
    /// Whether the person who submitted a job may be the one who approves it.
    pub allow_self_approval: bool,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            expire_hours: 72.0,
            own_jobs_need_approval: false,
            allow_self_approval: false,
        }
    }
}

impl ApprovalSettings {
    pub fn from_config(tables: &toml::Table) -> Result<ApprovalSettings, String> {
        let s: ApprovalSettings = match tables.get("approvals") {
            None => ApprovalSettings::default(),
            Some(t) => t
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("[approvals]: {e}"))?,
        };
        if !(s.expire_hours > 0.0 && s.expire_hours <= 24.0 * 365.0) {
            return Err(format!(
                "[approvals] expire_hours = {} is outside (0, 8760]",
                s.expire_hours
            ));
        }
        Ok(s)
    }

    fn window(&self) -> Duration {
        Duration::from_secs_f64(self.expire_hours * 3600.0)
    }
}

/// One item of the to-do list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// `job` (a partner's proposal), `own_job` (a job of this node's user waiting for a second
    /// person of this node), `project` (an invitation to join a partner's project; `id` is its
    /// name), `schedule` (a partner's scheduled job, approved once for all its runs) or
    /// `deployment` (a partner's model service; `id` is the deployment id).
    pub kind: String,
    pub id: String,
    /// The partner that asks.
    pub requested_by: String,
    pub requested_at: String,
    pub expires_at: String,
    /// Every security-relevant setting of the request, as the approval view lists them.
    pub security: Vec<String>,
}

fn millis_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `requested_at` plus the window, in the store's time format (both fixed-width UTC, so they
/// compare as text). `None` if the stored time does not parse.
fn expiry(requested_at: &str, window: Duration) -> Option<String> {
    let millis = parse_utc_millis(requested_at)?;
    Some(ferry_store::time::format_unix_millis(
        millis.saturating_add(window.as_millis() as i64),
    ))
}

/// Parses `YYYY-MM-DDTHH:MM:SS.mmmZ` (the store's format) into milliseconds since 1970.
fn parse_utc_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[10] != b'T' || b[23] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms)
}

impl Node {
    pub(crate) fn approval_settings(&self) -> ApprovalSettings {
        ApprovalSettings::from_config(&self.dir().config.other).unwrap_or_default()
    }

    /// Partners' proposals waiting for this node's decision, oldest first.
    pub fn pending_approvals(&self) -> Result<Vec<PendingApproval>, NodeError> {
        let window = self.approval_settings().window();
        let mut out = Vec::new();
        for job in self.store().list_jobs()? {
            // This node's own jobs waiting for a second person come from their requests.
            if job.status != JobStatus::PendingApproval || job.initiator == self.party().as_str() {
                continue;
            }
            out.push(PendingApproval {
                kind: "job".into(),
                expires_at: expiry(&job.created_at, window).unwrap_or_default(),
                security: self.security_view(&job.id).unwrap_or_default(),
                id: job.id,
                requested_by: job.initiator,
                requested_at: job.created_at,
            });
        }
        for request in self.store().pending_local_approvals()? {
            if request.kind != "job" {
                continue;
            }
            out.push(PendingApproval {
                kind: "own_job".into(),
                expires_at: expiry(&request.requested_at, window).unwrap_or_default(),
                security: self.security_view(&request.id).unwrap_or_default(),
                id: request.id,
                requested_by: request.requested_by,
                requested_at: request.requested_at,
            });
        }
        for (project, invited_at) in self.pending_invitations()? {
            out.push(PendingApproval {
                kind: "project".into(),
                expires_at: expiry(&invited_at, window).unwrap_or_default(),
                security: crate::projects::invitation_view(&project),
                id: project.name,
                requested_by: project.created_by,
                requested_at: invited_at,
            });
        }
        for schedule in self.pending_schedule_approvals()? {
            out.push(PendingApproval {
                kind: "schedule".into(),
                expires_at: expiry(&schedule.created_at, window).unwrap_or_default(),
                security: crate::schedules::schedule_security_view(&schedule),
                id: schedule.id,
                requested_by: schedule.guest,
                requested_at: schedule.created_at,
            });
        }
        for (service, security) in self.pending_deployment_approvals()? {
            out.push(PendingApproval {
                kind: "deployment".into(),
                expires_at: expiry(&service.created_at, window).unwrap_or_default(),
                security,
                id: service.deployment_id,
                requested_by: service.guest,
                requested_at: service.created_at,
            });
        }
        out.sort_by(|a, b| a.requested_at.cmp(&b.requested_at));
        Ok(out)
    }

    /// Refuses every proposal that waited longer than `[approvals] expire_hours`, telling
    /// each proposer. Returns the ids it refused.
    pub fn expire_stale_approvals(&self) -> Result<Vec<String>, NodeError> {
        let settings = self.approval_settings();
        let now = ferry_store::time::format_unix_millis(millis_of(SystemTime::now()));
        let mut expired = Vec::new();
        for item in self.pending_approvals()? {
            if item.expires_at.is_empty() || item.expires_at > now {
                continue;
            }
            if item.kind == "project" {
                let reason = format!(
                    "the invitation expired on {} after {} h without a decision",
                    self.party(),
                    settings.expire_hours
                );
                self.decline_project(&item.id, &reason)?;
                tracing::info!("invitation to project {} expired", item.id);
                expired.push(item.id);
                continue;
            }
            if item.kind == "own_job" {
                let reason = format!(
                    "no second person approved it within {} h",
                    settings.expire_hours
                );
                self.reject_as(&item.id, &reason, "node")?;
                tracing::info!("job {} expired waiting for an approver", item.id);
                expired.push(item.id);
                continue;
            }
            if item.kind == "deployment" {
                let reason = format!(
                    "the deployment expired on {} after {} h without a decision",
                    self.party(),
                    settings.expire_hours
                );
                self.reject_deployment(&item.id, &reason)?;
                expired.push(item.id);
                continue;
            }
            if item.kind == "schedule" {
                let reason = format!(
                    "the proposal expired on {} after {} h without a decision",
                    self.party(),
                    settings.expire_hours
                );
                self.reject_schedule(&item.id, &reason)?;
                tracing::info!("schedule {} from '{}' expired", item.id, item.requested_by);
                expired.push(item.id);
                continue;
            }
            let reason = format!(
                "the proposal expired on {} after {} h without a decision",
                self.party(),
                settings.expire_hours
            );
            self.store()
                .update_job_status(&item.id, JobStatus::Failed, Some(&reason))?;
            self.store().set_party_status(
                &item.id,
                self.party().as_str(),
                JobStatus::Failed,
                Some(&reason),
            )?;
            if let Ok(initiator) = PartyId::new(&item.requested_by) {
                self.send(
                    &initiator,
                    &Control::Reject {
                        job_id: item.id.clone(),
                        reason,
                    },
                );
            }
            tracing::info!("proposal {} from '{}' expired", item.id, item.requested_by);
            expired.push(item.id);
        }
        Ok(expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_times_parse_back_to_the_same_instant() {
        for millis in [0i64, 1_796_375_252_123, 951_782_400_000, 4_102_444_799_999] {
            let text = ferry_store::time::format_unix_millis(millis);
            assert_eq!(parse_utc_millis(&text), Some(millis), "{text}");
        }
        assert_eq!(parse_utc_millis("2026-12-04"), None);
        assert_eq!(
            expiry("2026-12-04T10:00:00.000Z", Duration::from_secs(3 * 3600)).as_deref(),
            Some("2026-12-04T13:00:00.000Z")
        );
    }

    #[test]
    fn the_window_comes_from_approvals_and_is_checked() {
        let t: toml::Table = toml::from_str("[approvals]\nexpire_hours = 0.5\n").unwrap();
        assert_eq!(
            ApprovalSettings::from_config(&t).unwrap().window(),
            Duration::from_secs(1800)
        );
        for bad in [
            "[approvals]\nexpire_hours = 0\n",
            "[approvals]\nexpire_hours = -1\n",
            "[approvals]\nexpire = 1\n",
        ] {
            let t: toml::Table = toml::from_str(bad).unwrap();
            assert!(
                ApprovalSettings::from_config(&t)
                    .unwrap_err()
                    .contains("[approvals]"),
                "{bad}"
            );
        }
    }
}
