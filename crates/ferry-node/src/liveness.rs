//! Liveness of partners in running jobs, separate from receive timeouts.
//!
//! A receive may wait a long time (`timeout_secs`, 600 s by default) because a partner may
//! compute for that long; so a dead partner and a busy one cannot be told apart by the next
//! protocol message. Instead every node sends a heartbeat on the control session every
//! `[liveness] heartbeat_secs` (default 5) to each partner it shares a running job with, from
//! the control thread, which computation never blocks. Anything that arrives from a partner
//! counts (a heartbeat, a protocol message, a chunk, an acknowledgement: the transport notes
//! the time of each). A partner silent for `[liveness] window_secs` (default 30) while a job
//! with it runs fails that job on this node with "PARTY unreachable since TIME"; the job's end
//! is told to the other partners as usual, so every node stops within its own window.

use crate::node::{Control, Node};
use ferry_context::PartyId;
use ferry_store::JobStatus;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `[liveness]` of `ferry.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LivenessSettings {
    /// Seconds a partner in a running job may stay silent before the job fails.
    pub window_secs: f64,
    /// Seconds between heartbeats to each partner in a running job.
    pub heartbeat_secs: f64,
}

impl Default for LivenessSettings {
    fn default() -> Self {
        LivenessSettings {
            window_secs: 30.0,
            heartbeat_secs: 5.0,
        }
    }
}

impl LivenessSettings {
    pub fn from_config(tables: &toml::Table) -> Result<LivenessSettings, String> {
        let s: LivenessSettings = match tables.get("liveness") {
            None => LivenessSettings::default(),
            Some(t) => t
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("[liveness]: {e}"))?,
        };
        if !(s.window_secs >= 1.0 && s.window_secs <= 86_400.0) {
            return Err(format!(
                "[liveness] window_secs = {} is outside [1, 86400]",
                s.window_secs
            ));
        }
        // At least three heartbeats per window, so one delayed heartbeat is no death.
        if !(s.heartbeat_secs > 0.0 && s.heartbeat_secs * 3.0 <= s.window_secs) {
            return Err(format!(
                "[liveness] heartbeat_secs = {} must be above 0 and at most a third of window_secs = {}",
                s.heartbeat_secs, s.window_secs
            ));
        }
        Ok(s)
    }

    pub fn window(&self) -> Duration {
        Duration::from_secs_f64(self.window_secs)
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_secs)
    }
}

/// When this node last sent a heartbeat to each partner.
#[derive(Default)]
pub struct Heartbeats {
    sent: Mutex<HashMap<PartyId, Instant>>,
}

/// A running job's view for the liveness check: its id, its partners, when it started here.
pub(crate) struct RunningJob {
    pub id: String,
    pub partners: Vec<PartyId>,
    pub started_at: Instant,
}

/// The partner of `job` that has been silent longest beyond `window`, with the instant it was
/// last heard from (or the job's start, if never since). Pure, so the rule is tested alone.
pub(crate) fn silent_partner(
    job: &RunningJob,
    last_heard: impl Fn(&PartyId) -> Option<Instant>,
    now: Instant,
    window: Duration,
) -> Option<(PartyId, Instant)> {
    job.partners
        .iter()
        .map(|p| {
            // Heard before the job started counts from the start: the window runs from then.
            let since = last_heard(p)
                .map(|t| t.max(job.started_at))
                .unwrap_or(job.started_at);
            (p.clone(), since)
        })
        .filter(|(_, since)| now.saturating_duration_since(*since) > window)
        .min_by_key(|(_, since)| *since)
}

/// `t` (a monotonic instant) as wall-clock text in the store's format.
fn wall_clock(t: Instant) -> String {
    let ago = Instant::now().saturating_duration_since(t);
    let at = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    ferry_store::time::format_unix_millis(at)
}

impl Node {
    pub(crate) fn liveness_settings(&self) -> LivenessSettings {
        LivenessSettings::from_config(&self.dir().config.other).unwrap_or_default()
    }

    /// One round of the control thread: heartbeats due to partners in running jobs, and
    /// running jobs failed for a partner silent beyond the window.
    pub(crate) fn liveness_tick(&self) {
        let settings = self.liveness_settings();
        let running = self.running_jobs();
        if running.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut partners: Vec<&PartyId> = running.iter().flat_map(|j| &j.partners).collect();
        partners.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        partners.dedup();
        let due: Vec<PartyId> = {
            let mut sent = self
                .heartbeats()
                .sent
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mut due = Vec::new();
            for p in partners {
                let last = sent.get(p).copied();
                if last.is_none_or(|t| now.saturating_duration_since(t) >= settings.heartbeat()) {
                    sent.insert(p.clone(), now);
                    due.push(p.clone());
                }
            }
            due
        };
        for p in &due {
            self.send(p, &Control::Heartbeat);
        }
        for job in &running {
            let Some((party, since)) = silent_partner(
                job,
                |p| self.transport().last_heard(p),
                now,
                settings.window(),
            ) else {
                continue;
            };
            let reason = format!(
                "{party} unreachable since {} (nothing heard from it for over {} s)",
                wall_clock(since),
                settings.window_secs
            );
            tracing::warn!("job {}: {reason}", job.id);
            let _ = self.store().set_party_status(
                &job.id,
                party.as_str(),
                JobStatus::Failed,
                Some(&reason),
            );
            self.fail_running_job(&job.id, &reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(n: &str) -> PartyId {
        PartyId::new(n).unwrap()
    }

    #[test]
    fn a_partner_is_silent_only_beyond_the_window_counted_from_the_later_of_start_and_last_word() {
        let start = Instant::now();
        let job = RunningJob {
            id: "job-1".into(),
            partners: vec![party("telco"), party("insurer")],
            started_at: start,
        };
        let window = Duration::from_secs(30);
        let heard: HashMap<&str, Instant> = HashMap::from([
            ("telco", start + Duration::from_secs(20)),
            // Heard long before the job started: the window counts from the start.
            (
                "insurer",
                start.checked_sub(Duration::from_secs(100)).unwrap_or(start),
            ),
        ]);
        let last = |p: &PartyId| heard.get(p.as_str()).copied();
        // 29 s after the start nobody is silent beyond 30 s.
        assert_eq!(
            silent_partner(&job, last, start + Duration::from_secs(29), window),
            None
        );
        // 31 s: the insurer (silent since the start) is; the telco spoke at 20 s.
        let (p, since) =
            silent_partner(&job, last, start + Duration::from_secs(31), window).unwrap();
        assert_eq!((p.as_str(), since), ("insurer", start));
        // A partner never heard from at all counts from the start too.
        let never = |_: &PartyId| None;
        assert!(silent_partner(&job, never, start + Duration::from_secs(30), window).is_none());
        assert!(silent_partner(&job, never, start + Duration::from_secs(31), window).is_some());
    }

    #[test]
    fn settings_need_several_heartbeats_per_window() {
        let ok: toml::Table =
            toml::from_str("[liveness]\nwindow_secs = 3\nheartbeat_secs = 0.5").unwrap();
        let s = LivenessSettings::from_config(&ok).unwrap();
        assert_eq!(s.window(), Duration::from_secs(3));
        for bad in [
            "[liveness]\nwindow_secs = 3\nheartbeat_secs = 2",
            "[liveness]\nwindow_secs = 0.5",
            "[liveness]\nwindow = 3",
        ] {
            let t: toml::Table = toml::from_str(bad).unwrap();
            let err = LivenessSettings::from_config(&t).unwrap_err();
            assert!(err.contains("[liveness]"), "{err}");
        }
        assert_eq!(
            LivenessSettings::from_config(&toml::Table::new()).unwrap(),
            LivenessSettings::default()
        );
    }
}
