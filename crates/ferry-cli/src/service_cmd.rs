//! `ferry model deploy NAME --version V --service S` and `ferry service ...`: model services
//! (online federated inference). Only the guest deploys, switches and predicts; a host
//! approves or rejects a partner's deployment and may withdraw its part (`undeploy`).

use crate::node_cmds::Target;
use crate::table::{self, left, print_json, right, text};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// `ferry model deploy`.
#[derive(Args)]
pub struct DeployArgs {
    /// The stored model (this node's guest part).
    pub name: String,
    /// Its version (default: the newest).
    #[arg(long)]
    pub version: Option<u32>,
    /// The service's name.
    #[arg(long)]
    pub service: String,
    /// This node's feature dataset (without one, each request carries the features).
    #[arg(long)]
    pub dataset: Option<String>,
    /// A host's dataset, `party=dataset` (repeatable; it must be granted to this node there).
    /// A host not named picks its dataset when it approves.
    #[arg(long = "host-dataset", value_name = "PARTY=DATASET")]
    pub host_datasets: Vec<String>,
    /// A stored feature_transform applied before the model (each party uses its own part).
    #[arg(long)]
    pub transform: Option<String>,
    #[arg(long)]
    pub transform_version: Option<u32>,
    /// How long a prediction waits for a host, in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Wait up to this many seconds for the hosts' approval.
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// The model services on this node (deployed here, or served here for a partner).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// A service: model and version, status, hosts' decisions, counters, what each party learns.
    Show {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Stop a service (guest), or withdraw this node's part of a partner's service (host).
    Undeploy {
        name: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Switch a service to another version of its model without downtime (rollback: the same
    /// with the older version); waits until every host has loaded it.
    Switch {
        name: String,
        #[arg(long)]
        version: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Approve a partner's deployment (by service name or deployment id).
    Approve {
        name: String,
        /// The dataset of this node that feeds the service (needed when the proposal named none).
        #[arg(long)]
        dataset: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Refuse a partner's deployment; the reason is sent to it.
    Reject {
        name: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
    /// Score ids online (the guest's features from its feature table).
    Predict {
        name: String,
        /// Ids to score (at most `[serving] max_batch`).
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
}

pub fn deploy(a: DeployArgs) -> anyhow::Result<()> {
    let mut hosts = serde_json::Map::new();
    for h in &a.host_datasets {
        let (party, dataset) = h
            .split_once('=')
            .with_context(|| format!("--host-dataset '{h}': write PARTY=DATASET"))?;
        hosts.insert(party.to_string(), json!(dataset));
    }
    let mut body = json!({
        "name": a.service,
        "model": a.name,
        "host_datasets": hosts,
        "wait_secs": a.wait,
    });
    for (k, v) in [
        ("version", a.version.map(|v| json!(v))),
        ("dataset", a.dataset.map(|v| json!(v))),
        ("transform", a.transform.map(|v| json!(v))),
        ("transform_version", a.transform_version.map(|v| json!(v))),
        ("timeout_ms", a.timeout_ms.map(|v| json!(v))),
    ] {
        if let Some(v) = v {
            body[k] = v;
        }
    }
    let v = a.target.client()?.post_json("/api/v1/services", &body)?;
    if a.target.json {
        return print_json(&v);
    }
    println!(
        "service '{}': model '{}' v{}, {}",
        text(&v["name"]),
        text(&v["model"]),
        table::number(&v["version"]),
        text(&v["status"])
    );
    if v["status"] == "pending_approval" {
        println!(
            "each host approves it on its node: ferry service approve {} [--dataset D] (see ferry approvals)",
            text(&v["name"])
        );
    }
    Ok(())
}

fn hosts(v: &Value) -> String {
    v["detail"]["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| format!("{} ({})", text(&h["party"]), text(&h["decision"])))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(cmd: ServiceCommand) -> anyhow::Result<()> {
    match cmd {
        ServiceCommand::List { target } => {
            let list: Vec<ferry_api::Service> = target.client()?.get_typed("/api/v1/services")?;
            if target.json {
                return print_json(&serde_json::to_value(&list)?);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.role.clone(),
                        s.guest.clone(),
                        s.model.clone(),
                        s.version.to_string(),
                        // The status's API name.
                        text(&serde_json::to_value(s.status).unwrap_or_default()),
                        s.dataset.clone().unwrap_or_default(),
                        s.requests.to_string(),
                        s.ids.to_string(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("no model services on this node");
                return Ok(());
            }
            table::print(
                "",
                &[
                    left("name"),
                    left("role"),
                    left("guest"),
                    left("model"),
                    right("version"),
                    left("status"),
                    left("dataset"),
                    right("requests"),
                    right("ids"),
                ],
                &rows,
            );
        }
        ServiceCommand::Show { name, target } => {
            let v = target.client()?.get(&format!("/api/v1/services/{name}"))?;
            if target.json {
                return print_json(&v);
            }
            let s = &v["service"];
            println!(
                "service     {} ({} here)",
                text(&s["name"]),
                text(&s["role"])
            );
            println!(
                "model       {} v{} ({}){}",
                text(&s["model"]),
                table::number(&s["version"]),
                text(&s["kind"]),
                match s["pending_version"].as_u64() {
                    Some(p) => format!(", switching to v{p}"),
                    None => String::new(),
                }
            );
            println!(
                "status      {}{}",
                text(&s["status"]),
                match text(&s["reason"]) {
                    r if r.is_empty() => String::new(),
                    r => format!(" ({r})"),
                }
            );
            println!("guest       {}", text(&s["guest"]));
            if s["role"] == "guest" {
                println!("hosts       {}", hosts(s));
            }
            println!(
                "dataset     {} ({} rows in memory)",
                text(&s["dataset"]),
                table::number(&v["table_rows"])
            );
            println!(
                "answered    {} requests, {} ids, {} errors (last {})",
                table::number(&s["requests"]),
                table::number(&s["ids"]),
                table::number(&s["errors"]),
                text(&s["last_request_at"])
            );
            println!("privacy:");
            for line in v["privacy"].as_array().into_iter().flatten() {
                println!("    {}", text(line));
            }
        }
        ServiceCommand::Undeploy {
            name,
            reason,
            target,
        } => {
            let body = json!({"reason": reason.unwrap_or_else(|| "undeployed by a user".into())});
            let v = target
                .client()?
                .delete_json(&format!("/api/v1/services/{name}"), &body)?;
            if target.json {
                return print_json(&v);
            }
            println!("undeployed service '{name}'; its partners are told");
        }
        ServiceCommand::Switch {
            name,
            version,
            target,
        } => {
            let v = target.client()?.post_json(
                &format!("/api/v1/services/{name}/switch"),
                &json!({"version": version}),
            )?;
            if target.json {
                return print_json(&v);
            }
            if v["pending_version"].is_null() && v["version"].as_u64() == Some(version.into()) {
                println!("service '{name}' answers with version {version}");
            } else {
                println!(
                    "service '{name}' still answers with version {}: {}",
                    table::number(&v["version"]),
                    match text(&v["reason"]) {
                        r if r.is_empty() => "the hosts have not loaded the new version yet".into(),
                        r => r,
                    }
                );
            }
        }
        ServiceCommand::Approve {
            name,
            dataset,
            target,
        } => {
            let body = match dataset {
                Some(d) => json!({"dataset": d}),
                None => json!({}),
            };
            let v = target
                .client()?
                .post_json(&format!("/api/v1/services/{name}/approve"), &body)?;
            if target.json {
                return print_json(&v);
            }
            println!(
                "service '{}' is {} on this node",
                text(&v["name"]),
                text(&v["status"])
            );
        }
        ServiceCommand::Reject {
            name,
            reason,
            target,
        } => {
            let v = target.client()?.post_json(
                &format!("/api/v1/services/{name}/reject"),
                &json!({"reason": reason}),
            )?;
            if target.json {
                return print_json(&v);
            }
            println!("rejected the deployment of '{name}'; the reason is sent to its guest");
        }
        ServiceCommand::Predict { name, ids, target } => {
            let v = target.client()?.post_json(
                &format!("/api/v1/services/{name}/predict"),
                &json!({ "ids": ids }),
            )?;
            if target.json {
                return print_json(&v);
            }
            let rows = table::rows(&v["predictions"], |p| {
                vec![
                    text(&p["id"]),
                    p["scores"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| s.as_f64().map(|x| format!("{x:.6}")).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(" "),
                    text(&p["class"]),
                    text(&p["error"]),
                ]
            });
            table::print(
                "",
                &[left("id"), left("score"), right("class"), left("error")],
                &rows,
            );
        }
    }
    Ok(())
}
