//! `ferry project ...`: projects across nodes. A project names its partners (who join by
//! approval), the datasets granted to it (`ferry dataset grant D --project P`), and its jobs
//! (a job spec's `project: P`) and their models.

use crate::node_cmds::Target;
use crate::table::text;
use crate::table::{self, left};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum ProjectCommand {
    /// Create a project on this node and invite partners (each must approve on its node).
    Create {
        name: String,
        /// A partner to invite (repeat for several).
        #[arg(long = "partner", required = true)]
        partners: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        target: Target,
    },
    /// The projects this node knows (its own and those it was invited to).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// A project: members and their status, datasets granted to it, its jobs and models.
    Show {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Join a project a partner invited this node to (the creator is told).
    Approve {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Decline an invitation; the reason reaches the creator.
    Decline {
        name: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
}

fn members(v: &Value) -> String {
    v["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| format!("{} ({})", text(&m["party"]), text(&m["status"])))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(cmd: ProjectCommand) -> anyhow::Result<()> {
    match cmd {
        ProjectCommand::Create {
            name,
            partners,
            description,
            target,
        } => {
            let v = target.client()?.post_json(
                "/api/v1/projects",
                &json!({"name": name, "description": description, "partners": partners}),
            )?;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("created project '{name}': {}", members(&v));
            println!(
                "each partner approves on its node: ferry project approve {name} (see ferry approvals)"
            );
        }
        ProjectCommand::List { target } => {
            let v = target.client()?.get("/api/v1/projects")?;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    vec![
                        text(&p["name"]),
                        text(&p["created_by"]),
                        members(p),
                        text(&p["description"]),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("no projects on this node");
                return Ok(());
            }
            table::print(
                "",
                &[
                    left("project"),
                    left("created by"),
                    left("members"),
                    left("description"),
                ],
                &rows,
            );
        }
        ProjectCommand::Show { name, target } => {
            let v = target.client()?.get(&format!("/api/v1/projects/{name}"))?;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("project     {}", text(&v["name"]));
            println!(
                "created     {} by {}",
                text(&v["created_at"]),
                text(&v["created_by"])
            );
            if !text(&v["description"]).is_empty() {
                println!("description {}", text(&v["description"]));
            }
            println!("members     {}", members(&v));
            let list = |key: &str| -> Vec<String> {
                v[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| match key {
                        "jobs" => format!(
                            "{} ({}, by {})",
                            text(&x["id"]),
                            text(&x["status"]),
                            text(&x["initiator"])
                        ),
                        "models" => format!(
                            "{} v{} ({}, job {})",
                            text(&x["name"]),
                            text(&x["version"]),
                            text(&x["kind"]),
                            text(&x["job_id"])
                        ),
                        _ => text(x),
                    })
                    .collect()
            };
            for (key, heading) in [
                ("datasets", "datasets granted to it on this node"),
                ("jobs", "jobs"),
                ("models", "models"),
            ] {
                let items = list(key);
                println!("{heading}:{}", if items.is_empty() { " none" } else { "" });
                for item in items {
                    println!("    {item}");
                }
            }
        }
        ProjectCommand::Approve { name, target } => {
            target
                .client()?
                .post_json(&format!("/api/v1/projects/{name}/approve"), &json!({}))?;
            println!("joined project '{name}'; its creator is told");
        }
        ProjectCommand::Decline {
            name,
            reason,
            target,
        } => {
            target.client()?.post_json(
                &format!("/api/v1/projects/{name}/decline"),
                &json!({"reason": reason}),
            )?;
            println!("declined project '{name}'; its creator is told");
        }
    }
    Ok(())
}
