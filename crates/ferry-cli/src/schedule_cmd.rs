//! `ferry job schedule FILE --cron "..."` and `ferry schedule ...`: scheduled jobs. A schedule
//! is a job spec with a cron expression (UTC unless `--timezone` gives a fixed offset); the
//! job's partners approve it once, and every run is an ordinary job listed under it.

use crate::node_cmds::Target;
use crate::table::{self, left, print_json, right, text};
use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::Path;

#[derive(Subcommand)]
pub enum ScheduleCommand {
    /// The schedules on this node (this node's own and partners' it takes part in).
    List {
        /// Deleted schedules too.
        #[arg(long)]
        deleted: bool,
        #[command(flatten)]
        target: Target,
    },
    /// A schedule: cron, status, every party's decision, next fire times and every run.
    Show {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Stop a schedule's runs until it is resumed (this node must be its guest).
    Pause {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Resume a paused schedule; the next fire time counts from now.
    Resume {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a schedule (no more runs; it stays listed with --deleted).
    Delete {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Approve a partner's schedule: its runs with the approved spec need no further approval.
    Approve {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Refuse a partner's schedule; the reason is sent to it.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
    /// Withdraw this node's approval of a partner's schedule: its later runs are refused with
    /// the reason.
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
}

/// `ferry job schedule FILE --cron "0 2 * * *" [--name N] [--timezone +08:00]`.
pub fn create(
    file: &Path,
    cron: &str,
    name: Option<String>,
    timezone: Option<String>,
    target: &Target,
) -> anyhow::Result<()> {
    let spec =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut body = json!({"spec": spec, "cron": cron});
    if let Some(n) = name {
        body["name"] = json!(n);
    }
    if let Some(tz) = timezone {
        body["timezone"] = json!(tz);
    }
    let v = target.client()?.post_json("/api/v1/schedules", &body)?;
    if target.json {
        return print_json(&v);
    }
    let id = text(&v["id"]);
    println!(
        "created schedule {id} '{}': cron '{}' ({}), {}",
        text(&v["name"]),
        text(&v["cron"]),
        offset_text(v["utc_offset_minutes"].as_i64().unwrap_or(0)),
        text(&v["status"])
    );
    if v["status"] == "pending_approval" {
        println!(
            "each partner approves it once on its node: ferry schedule approve {id} (see ferry approvals)"
        );
    }
    Ok(())
}

fn offset_text(minutes: i64) -> String {
    if minutes == 0 {
        return "UTC".into();
    }
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

/// Each party and its decision: `bank (approved), telco (pending)`.
fn decisions(parties: &[ferry_api::ScheduleParty]) -> String {
    parties
        .iter()
        .map(|p| format!("{} ({})", p.party, name_of(p.decision)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An enum's API name (`pending_approval`, `approved`, ...).
fn name_of(v: impl serde::Serialize) -> String {
    text(&serde_json::to_value(v).unwrap_or_default())
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

pub fn run(cmd: ScheduleCommand) -> anyhow::Result<()> {
    match cmd {
        ScheduleCommand::List { deleted, target } => {
            let q = if deleted { "?deleted=true" } else { "" };
            let list: Vec<ferry_api::Schedule> = target
                .client()?
                .get_typed(&format!("/api/v1/schedules{q}"))?;
            if target.json {
                return print_json(&serde_json::to_value(&list)?);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        s.id.clone(),
                        s.name.clone(),
                        format!(
                            "{} ({})",
                            s.cron,
                            offset_text(i64::from(s.utc_offset_minutes))
                        ),
                        s.guest.clone(),
                        name_of(s.status),
                        opt(&s.next_run),
                        s.run_count.to_string(),
                        opt(&s.last_job_id),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("no schedules on this node");
                return Ok(());
            }
            table::print(
                "",
                &[
                    left("id"),
                    left("name"),
                    left("cron"),
                    left("guest"),
                    left("status"),
                    left("next run"),
                    right("runs"),
                    left("last job"),
                ],
                &rows,
            );
        }
        ScheduleCommand::Show { id, target } => {
            let v: ferry_api::ScheduleDetail = target
                .client()?
                .get_typed(&format!("/api/v1/schedules/{id}"))?;
            if target.json {
                return print_json(&serde_json::to_value(&v)?);
            }
            let s = &v.schedule;
            println!("schedule    {} '{}'", s.id, s.name);
            println!("cron        {} ({})", s.cron, v.timezone);
            println!(
                "status      {}{}",
                name_of(s.status),
                match opt(&s.reason) {
                    r if r.is_empty() => String::new(),
                    r => format!(" ({r})"),
                }
            );
            println!("guest       {} (this node is the {})", s.guest, v.role);
            println!("created     {} by {}", s.created_at, s.created_by);
            println!("parties     {}", decisions(&s.parties));
            if !v.upcoming.is_empty() {
                println!("next runs   {}", v.upcoming.join(", "));
            }
            let rows: Vec<Vec<String>> = v
                .runs
                .iter()
                .map(|r| {
                    vec![
                        r.seq.to_string(),
                        r.fire_time.clone(),
                        opt(&r.job_id),
                        opt(&r.job_status),
                        name_of(r.outcome),
                        opt(&r.detail),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("runs:       none yet");
            } else {
                println!("runs:");
                table::print(
                    "    ",
                    &[
                        right("#"),
                        left("fire time"),
                        left("job"),
                        left("job status"),
                        left("outcome"),
                        left("detail"),
                    ],
                    &rows,
                );
            }
        }
        ScheduleCommand::Pause { id, target } => {
            let v = post(&target, &id, "pause", json!({}))?;
            if !target.json {
                println!("paused schedule {id}; its partners are told");
            }
            finish(&target, &v)?;
        }
        ScheduleCommand::Resume { id, target } => {
            let v = post(&target, &id, "resume", json!({}))?;
            if !target.json {
                println!("resumed schedule {id}; next run {}", text(&v["next_run"]));
            }
            finish(&target, &v)?;
        }
        ScheduleCommand::Delete { id, target } => {
            let v = target
                .client()?
                .delete(&format!("/api/v1/schedules/{id}"))?;
            if !target.json {
                println!("deleted schedule {id}; its partners are told");
            }
            finish(&target, &v)?;
        }
        ScheduleCommand::Approve { id, target } => {
            let v = post(&target, &id, "approve", json!({}))?;
            if !target.json {
                println!(
                    "approved schedule {id}: its runs with this spec are accepted without asking again"
                );
            }
            finish(&target, &v)?;
        }
        ScheduleCommand::Reject { id, reason, target } => {
            let v = post(&target, &id, "reject", json!({"reason": reason}))?;
            if !target.json {
                println!("rejected schedule {id}; the reason is sent to its guest");
            }
            finish(&target, &v)?;
        }
        ScheduleCommand::Revoke { id, reason, target } => {
            let v = post(&target, &id, "revoke", json!({"reason": reason}))?;
            if !target.json {
                println!("revoked the approval of schedule {id}; its later runs are refused");
            }
            finish(&target, &v)?;
        }
    }
    Ok(())
}

fn post(target: &Target, id: &str, action: &str, body: Value) -> anyhow::Result<Value> {
    target
        .client()?
        .post_json(&format!("/api/v1/schedules/{id}/{action}"), &body)
}

fn finish(target: &Target, v: &Value) -> anyhow::Result<()> {
    if target.json {
        print_json(v)?;
    }
    Ok(())
}
