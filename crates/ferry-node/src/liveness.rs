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
//!
//! Idle partners (pinned, in no job running here) get a keep-alive instead, so that the
//! partner list (`GET /api/v1/partners`, the console's overview) tells a reachable partner from
//! an unreachable one: every `heartbeat_secs` the transport *probes* each one
//! ([`ferry_transport::FederationTransport::probe`]: an `Exchange` stream opened over the
//! link's or a kept connection and answered, no message). A partner heard from within the
//! interval anyway is skipped; after a failed probe the next waits twice as long each time, up
//! to [`MAX_PROBE_BACKOFF`], so a dead partner costs one failed connect a minute. The schedule
//! is this node's alone: what a partner sends can only make it probe less. A probe is kept
//! apart from job liveness on both ends: its answer is recorded here ([`Reach`]), not as
//! hearing from the partner, and it carries no frame, so the partner does not count it either;
//! a failed probe only sets the reason the partner list shows, and never fails a job.

use crate::node::{Control, Node};
use ferry_context::PartyId;
use ferry_store::JobStatus;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

/// Longest wait between probes of an idle partner that does not answer.
pub const MAX_PROBE_BACKOFF: Duration = Duration::from_secs(60);
/// Longest a probe may wait for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// When this node last sent a heartbeat to each partner, and what probes of idle partners found.
#[derive(Default)]
pub struct Heartbeats {
    sent: Mutex<HashMap<PartyId, Instant>>,
    reach: Arc<Mutex<HashMap<PartyId, Reach>>>,
}

/// What the keep-alive knows of an idle partner.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reach {
    /// When it last answered a probe.
    pub answered: Option<Instant>,
    /// The last probe failed: when, and why.
    pub failed: Option<(Instant, String)>,
    /// Probes failed in a row.
    failures: u32,
    /// No probe before this.
    next_at: Option<Instant>,
    /// A probe is under way.
    in_flight: bool,
}

/// The wait before the next probe of a partner after `failures` failed probes in a row:
/// the heartbeat interval, doubled per failure, at most [`MAX_PROBE_BACKOFF`].
pub(crate) fn probe_backoff(heartbeat: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.min(16));
    heartbeat
        .checked_mul(factor)
        .unwrap_or(MAX_PROBE_BACKOFF)
        .min(MAX_PROBE_BACKOFF.max(heartbeat))
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
        self.keep_alive_idle(&settings, &running);
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

impl Node {
    /// Probes due to idle partners (see the module docs).
    fn keep_alive_idle(&self, settings: &LivenessSettings, running: &[RunningJob]) {
        let now = Instant::now();
        let heartbeat = settings.heartbeat();
        let timeout = settings.window().min(PROBE_TIMEOUT);
        let reach = self.heartbeats().reach.clone();
        let mut due = Vec::new();
        {
            let mut map = reach.lock().unwrap_or_else(|p| p.into_inner());
            let peers = self.transport().peers();
            // Removed partners are forgotten.
            map.retain(|p, _| peers.contains(p));
            for p in peers {
                // Partners in running jobs get the jobs' heartbeats.
                if running.iter().any(|j| j.partners.contains(&p)) {
                    continue;
                }
                let r = map.entry(p.clone()).or_default();
                if r.in_flight || r.next_at.is_some_and(|t| now < t) {
                    continue;
                }
                let heard = self.transport().last_heard(&p);
                if heard.is_some_and(|t| now.saturating_duration_since(t) < heartbeat) {
                    // Heard from just now: reachable, no probe needed.
                    if heard.is_some_and(|t| r.failed.as_ref().is_none_or(|(f, _)| t > *f)) {
                        r.failed = None;
                        r.failures = 0;
                    }
                    continue;
                }
                r.in_flight = true;
                due.push(p);
            }
        }
        for p in due {
            let reach = reach.clone();
            let peer = p.clone();
            self.transport().probe(&p, timeout, move |outcome| {
                let at = Instant::now();
                let mut map = reach.lock().unwrap_or_else(|p| p.into_inner());
                let r = map.entry(peer.clone()).or_default();
                r.in_flight = false;
                match outcome {
                    Ok(()) => {
                        r.answered = Some(at);
                        r.failed = None;
                        r.failures = 0;
                        r.next_at = Some(at + heartbeat);
                    }
                    Err(e) => {
                        if r.failed.is_none() {
                            tracing::info!("partner '{peer}' is not reachable: {e}");
                        }
                        r.failed = Some((at, e));
                        r.failures = r.failures.saturating_add(1);
                        r.next_at = Some(at + probe_backoff(heartbeat, r.failures));
                    }
                }
            });
        }
    }

    /// What the keep-alive knows of `party` now.
    pub(crate) fn reach(&self, party: &PartyId) -> Reach {
        self.heartbeats()
            .reach
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(party)
            .cloned()
            .unwrap_or_default()
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
    fn probes_of_a_silent_partner_back_off_to_a_minute() {
        let hb = Duration::from_secs(5);
        assert_eq!(probe_backoff(hb, 0), hb);
        assert_eq!(probe_backoff(hb, 1), Duration::from_secs(10));
        assert_eq!(probe_backoff(hb, 3), Duration::from_secs(40));
        assert_eq!(probe_backoff(hb, 4), MAX_PROBE_BACKOFF);
        assert_eq!(probe_backoff(hb, u32::MAX), MAX_PROBE_BACKOFF);
        // A heartbeat longer than the cap is never shortened by failures.
        let slow = Duration::from_secs(100);
        assert_eq!(probe_backoff(slow, 5), slow);
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
