//! `ferry serve`, `ferry token`, `ferry dataset`, `ferry job`, `ferry model`: the node and the
//! CLI that mirrors its API.

use crate::client::{ADMIN_TOKEN_FILE, ApiClient};
use crate::table::{self, left, right};
use crate::table::{number, print_json, text};
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use ferry_node::Node;
use ferry_store::{Store, TokenRole};
use ferry_transport::NodeDir;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where to find the node: its directory (for the API address and admin token), or an
/// explicit API address and token.
#[derive(Args, Clone)]
pub struct Target {
    /// Node directory (default: $FERRY_DIR or the current directory).
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    /// API base URL, e.g. http://127.0.0.1:8001 (default: from the node directory).
    #[arg(long, global = true)]
    pub api: Option<String>,
    /// API token (default: $FERRY_TOKEN, else the node directory's admin token).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Target {
    pub fn dir(&self) -> PathBuf {
        crate::node_dir(self.dir.clone())
    }

    pub fn client(&self) -> anyhow::Result<ApiClient> {
        ApiClient::for_node(&self.dir(), self.api.clone(), self.token.clone())
    }
}

/// Who ran a command that works on the node directory itself (user and token management,
/// offline partner changes): the operating-system account, since whoever can run it can read
/// the node's files.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// Records an action done on the node directory in the node's action log (such commands do
/// not go through the API, whose layer records everything else).
pub fn record_cli_action(store: &Store, action: &str, object: String) -> anyhow::Result<()> {
    store
        .record_action(&ferry_store::NewAction::ok(
            cli_actor(),
            action,
            object,
            "local",
        ))
        .context("cannot record the action in the node's action log")?;
    Ok(())
}

/// Opens a node's store directly (for bootstrap commands that run without a server).
pub fn open_store(dir: &Path) -> anyhow::Result<(NodeDir, Store)> {
    let node = NodeDir::open(dir)?;
    // With the node's [crypto] settings, as the server opens it: SM2 model signatures under
    // the gm suite, model files decrypted under encrypt_at_rest.
    let crypto = ferry_node::crypto::CryptoSettings::from_config(&node.config.other)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("ferry.toml").display()))?;
    let store = crypto.open_store(&node).map_err(|e| anyhow::anyhow!(e))?;
    Ok((node, store))
}

/// Creates the admin token of a fresh node and keeps it in `state/admin.token` (0600).
pub fn create_admin_token(dir: &Path) -> anyhow::Result<PathBuf> {
    let (node, store) = open_store(dir)?;
    let (_, secret) = store.create_token("admin", TokenRole::Admin)?;
    let path = node.path(&node.config.state_dir).join(ADMIN_TOKEN_FILE);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    Ok(path)
}

/// `ferry serve`: runs the node until Ctrl-C or SIGTERM.
pub fn serve(dir: &Path) -> anyhow::Result<()> {
    let node_dir = NodeDir::open(dir)?;
    let listen = node_dir.config.api_listen.clone();
    let fed = node_dir.config.federation_listen.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(ferry_node::api::bind(&listen))?;
    let node = Node::start(node_dir).map_err(|e| {
        let e = anyhow::Error::from(e);
        if e.to_string().contains("cannot listen on") {
            e.context(format!(
                "the federation endpoint {fed} is taken (by another node or program?); \
                 change federation_listen in ferry.toml"
            ))
        } else {
            e
        }
    })?;
    eprintln!(
        "node '{}' is up: federation endpoint {fed} (mutual TLS), API http://{listen}",
        node.party()
    );
    let shutdown = async {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    let result = runtime.block_on(ferry_node::api::serve(node.clone(), listener, shutdown));
    eprintln!("node '{}' stopping", node.party());
    node.shutdown();
    result?;
    Ok(())
}

// -------------------------------------------------------------------------------------------

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token (prints the secret once).
    Create {
        #[arg(long)]
        name: String,
        /// admin, user or read_only (a service account; ignored with --user).
        #[arg(long, default_value = "user")]
        role: String,
        /// Make it a personal token of this user: it acts as the user, with the user's roles,
        /// and is revoked when the user is disabled.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// List tokens (names and roles; secrets are never stored).
    List {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Revoke a token.
    Revoke {
        name: String,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Token commands work on the node directory directly, so a fresh node can be bootstrapped
/// before its server runs.
pub fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            role,
            user,
            dir,
        } => {
            let role: TokenRole = role
                .parse()
                .map_err(|_| anyhow::anyhow!("unknown role '{role}' (admin, user, read_only)"))?;
            let (_, store) = open_store(&crate::node_dir(dir))?;
            if let Some(user) = &user {
                let u = store.user(user)?;
                if u.disabled_at.is_some() {
                    bail!("user '{user}' is disabled");
                }
            }
            let (info, secret) = store.create_token(&name, role)?;
            let acts_as = match &user {
                Some(user) => {
                    store.set_token_owner(&name, user)?;
                    format!("user '{user}'")
                }
                None => format!("a {} service account", info.role.as_str()),
            };
            record_cli_action(
                &store,
                "token.create",
                format!(
                    "name={}; role={}{}",
                    info.name,
                    info.role.as_str(),
                    user.as_ref()
                        .map(|u| format!("; user={u}"))
                        .unwrap_or_default()
                ),
            )?;
            println!("{secret}");
            eprintln!(
                "token '{}' ({acts_as}) created; this is the only time the secret is shown",
                info.name
            );
        }
        TokenCommand::List { dir } => {
            let (_, store) = open_store(&crate::node_dir(dir))?;
            let rows: Vec<Vec<String>> = store
                .list_tokens()?
                .into_iter()
                .map(|t| {
                    vec![
                        t.name,
                        t.role.as_str().to_string(),
                        t.created_at,
                        t.revoked_at.unwrap_or_default(),
                    ]
                })
                .collect();
            table::print(
                "",
                &[left("name"), left("role"), left("created"), left("revoked")],
                &rows,
            );
        }
        TokenCommand::Revoke { name, dir } => {
            let (_, store) = open_store(&crate::node_dir(dir))?;
            store.revoke_token(&name)?;
            record_cli_action(&store, "token.revoke", format!("name={name}"))?;
            println!("token '{name}' revoked");
        }
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Register a CSV or Parquet file: upload one from this machine (--file), or name one
    /// already on the node's machine (--server-path). The node keeps its own copy.
    Add {
        /// Dataset name (names starting with `job-` are reserved for job outputs).
        name: String,
        /// File on this machine, uploaded to the node. Never a file inside the node directory.
        #[arg(
            long,
            conflicts_with = "server_path",
            required_unless_present = "server_path"
        )]
        file: Option<PathBuf>,
        /// Absolute path of a file on the node's machine, inside a directory listed under
        /// `[datasets] import_dirs` in the node's ferry.toml (nothing is sent; for large files
        /// already there). Never a file inside the node directory.
        #[arg(long, value_name = "PATH")]
        server_path: Option<PathBuf>,
        /// Id column(s), comma separated (default: `id`, else the first column).
        #[arg(long, value_delimiter = ',')]
        id: Vec<String>,
        /// Label column, if this party holds labels.
        #[arg(long)]
        label: Option<String>,
        /// binary (default with --label), multiclass or continuous.
        #[arg(long)]
        label_kind: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Replace a dataset of the same name.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        target: Target,
    },
    /// List datasets.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Show a dataset and its per-column statistics.
    Show {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a dataset.
    Delete {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Allow a partner (any job), one job, or the jobs of a project (whose initiator is a
    /// joined member) to use a dataset.
    Grant {
        name: String,
        #[arg(long)]
        party: Option<String>,
        #[arg(long)]
        job: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Withdraw a grant.
    Revoke {
        name: String,
        #[arg(long)]
        party: Option<String>,
        #[arg(long)]
        job: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Download a dataset's file (a registered one, or a job's output: PSI rows, predictions,
    /// scorecard points) to FILE, checked against the SHA-256 the node recorded. Needs the
    /// export_data permission; the node records every download.
    Export {
        name: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        target: Target,
    },
}

pub fn dataset(cmd: DatasetCommand) -> anyhow::Result<()> {
    match cmd {
        DatasetCommand::Add {
            name,
            file,
            server_path,
            id,
            label,
            label_kind,
            description,
            replace,
            target,
        } => {
            // The name goes into the URL: check it here so it can only be one path segment.
            ferry_store::validate_name("dataset", &name)?;
            let rec = match (file, server_path) {
                (Some(file), _) => {
                    let local = std::fs::canonicalize(&file)
                        .with_context(|| format!("{}: no such file", file.display()))?;
                    // A node's own files (its private key, database, stored data) are never
                    // datasets; catch the mistake here when the node directory is on this
                    // machine.
                    if let Ok(node) = NodeDir::open(target.dir())
                        && let Some(owned) = ferry_node::import::owned_by_node(&node, &local)
                    {
                        bail!(
                            "{} is inside {}, which belongs to the node '{}' (its private key, \
                             database and stored data): a node's own files are never registered \
                             as datasets; copy the data out of the node directory first",
                            file.display(),
                            owned.display(),
                            node.config.party
                        );
                    }
                    let mut query = vec![
                        ("id_columns", id.join(",")),
                        ("description", description),
                        ("replace", replace.to_string()),
                    ];
                    if let Some(n) = local.file_name().and_then(|n| n.to_str()) {
                        query.push(("file_name", n.to_string()));
                    }
                    if let Some(l) = label {
                        query.push(("label", l));
                    }
                    if let Some(k) = label_kind {
                        query.push(("label_kind", k));
                    }
                    target.client()?.post_file(
                        &format!("/api/v1/datasets/{name}/upload"),
                        &query,
                        &local,
                    )?
                }
                (None, Some(path)) => {
                    let mut body = json!({"name": name, "path": path, "id_columns": id, "description": description, "replace": replace});
                    if let Some(l) = label {
                        body["label"] = json!(l);
                    }
                    if let Some(k) = label_kind {
                        body["label_kind"] = json!(k);
                    }
                    target.client()?.post_json("/api/v1/datasets", &body)?
                }
                (None, None) => bail!("give --file (upload a file) or --server-path"),
            };
            if target.json {
                return print_json(&rec);
            }
            println!(
                "registered '{}': {} rows, {} columns ({})",
                text(&rec["name"]),
                rec["rows"],
                rec["columns"].as_array().map(|c| c.len()).unwrap_or(0),
                text(&rec["format"])
            );
        }
        DatasetCommand::List { target } => {
            let list: Vec<ferry_api::Dataset> = target.client()?.get_typed("/api/v1/datasets")?;
            if target.json {
                return print_json(&serde_json::to_value(&list)?);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    let lineage = d
                        .lineage
                        .as_ref()
                        .map(|l| format!("{}/{}", l.job_id, l.task))
                        .unwrap_or_default();
                    let format = match d.format {
                        ferry_api::DataFormat::Csv => "csv",
                        ferry_api::DataFormat::Parquet => "parquet",
                    };
                    vec![
                        d.name.clone(),
                        d.rows.to_string(),
                        d.columns.len().to_string(),
                        d.label.clone().unwrap_or_default(),
                        format.to_string(),
                        lineage,
                    ]
                })
                .collect();
            table::print(
                "",
                &[
                    left("name"),
                    right("rows"),
                    right("columns"),
                    left("label"),
                    left("format"),
                    left("lineage"),
                ],
                &rows,
            );
        }
        DatasetCommand::Show { name, target } => {
            let v = target.client()?.get(&format!("/api/v1/datasets/{name}"))?;
            if target.json {
                return print_json(&v);
            }
            let d = &v["dataset"];
            println!(
                "dataset   {}  ({} rows, {}; id {}; label {})",
                text(&d["name"]),
                d["rows"],
                text(&d["format"]),
                d["id_columns"],
                text(&d["label"])
            );
            println!(
                "file      {}  sha256 {}",
                text(&d["path"]),
                text(&d["sha256"])
            );
            println!("grants    {}", v["grants"]);
            println!();
            let rows = table::rows(&v["stats"]["columns"], |c| {
                vec![
                    text(&c["name"]),
                    text(&c["type"]),
                    number(&c["missing"]),
                    number(&c["mean"]),
                    number(&c["std"]),
                    number(&c["min"]),
                    number(&c["quantiles"]["p50"]),
                    number(&c["max"]),
                    number(&c["distinct"]),
                ]
            });
            table::print(
                "",
                &[
                    left("column"),
                    left("type"),
                    right("missing"),
                    right("mean"),
                    right("std"),
                    right("min"),
                    right("median"),
                    right("max"),
                    right("distinct"),
                ],
                &rows,
            );
        }
        DatasetCommand::Delete { name, target } => {
            target
                .client()?
                .delete(&format!("/api/v1/datasets/{name}"))?;
            println!("deleted '{name}'");
        }
        DatasetCommand::Grant {
            name,
            party,
            job,
            project,
            target,
        } => {
            let body = grant_body(party, job, project)?;
            target
                .client()?
                .post_json(&format!("/api/v1/datasets/{name}/grants"), &body)?;
            println!("'{name}' may now be used by {}", describe_grant(&body));
        }
        DatasetCommand::Revoke {
            name,
            party,
            job,
            project,
            target,
        } => {
            let body = grant_body(party, job, project)?;
            target
                .client()?
                .delete_json(&format!("/api/v1/datasets/{name}/grants"), &body)?;
            println!(
                "'{name}' may no longer be used by {}",
                describe_grant(&body)
            );
        }
        DatasetCommand::Export {
            name,
            out,
            force,
            target,
        } => {
            if out.exists() && !force {
                bail!("{} exists (--force replaces it)", out.display());
            }
            let d = target
                .client()?
                .download(&format!("/api/v1/datasets/{name}/download"), &out)?;
            if target.json {
                return print_json(&json!({
                    "dataset": name, "file": out, "bytes": d.bytes, "sha256": d.sha256,
                }));
            }
            println!(
                "wrote dataset '{name}' to {} ({} bytes, SHA-256 {} as the node recorded it)",
                out.display(),
                d.bytes,
                d.sha256
            );
        }
    }
    Ok(())
}

fn grant_body(
    party: Option<String>,
    job: Option<String>,
    project: Option<String>,
) -> anyhow::Result<Value> {
    match (party, job, project) {
        (Some(p), None, None) => Ok(json!({"party": p})),
        (None, Some(j), None) => Ok(json!({"job": j})),
        (None, None, Some(p)) => Ok(json!({"project": p})),
        _ => bail!("give exactly one of --party, --job or --project"),
    }
}

fn describe_grant(body: &Value) -> String {
    match (body.get("party"), body.get("job"), body.get("project")) {
        (Some(p), _, _) => format!("party '{}' (in any job)", text(p)),
        (_, Some(j), _) => format!("job {}", text(j)),
        (_, _, Some(p)) => format!(
            "jobs of project '{}' whose initiator is a joined member",
            text(p)
        ),
        _ => String::new(),
    }
}

// -------------------------------------------------------------------------------------------

#[derive(Subcommand)]
pub enum JobCommand {
    /// Submit a job (YAML or JSON); this node must be the job's guest.
    Submit {
        file: PathBuf,
        /// Wait for the job to finish, with progress.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        target: Target,
    },
    /// List jobs.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// A job's status: every task and every party.
    Status {
        id: String,
        /// Keep refreshing until the job finishes.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Follow a job live (the node's event stream): a line each time the job, a task or a
    /// party changes, until it finishes; fails unless it succeeded.
    Watch {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Task logs and metrics.
    Logs {
        id: String,
        #[arg(long)]
        task: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// What crossed the wire: every message this node sent and received (tag, peer, bytes).
    Audit {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// What each party revealed to whom, per task: the protocol's stated leakage, the settings
    /// that bear on it, and the bytes this node exchanged with each peer.
    Privacy {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Approve a job a partner proposed.
    Approve {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Refuse a job a partner proposed; the reason is sent to the partner.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
    /// Cancel a job (on every participating node).
    Cancel {
        id: String,
        #[arg(long, default_value = "by a user")]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
    /// Run a job on a schedule: a cron expression (minute hour day-of-month month
    /// day-of-week, UTC unless --timezone gives a fixed offset). The job's partners approve
    /// the schedule once; each run is an ordinary job (ferry schedule show ID).
    Schedule {
        file: PathBuf,
        /// E.g. "0 2 * * *" (02:00 every day), "*/30 8-18 * * MON-FRI".
        #[arg(long)]
        cron: String,
        /// The schedule's name (default: the spec's name).
        #[arg(long)]
        name: Option<String>,
        /// A fixed offset from UTC the expression is read in, e.g. +08:00 (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Run a job again from a task, reusing the outputs of the tasks before it.
    Rerun {
        id: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Continue a failed or cancelled job from the last checkpoint of its interrupted training
    /// task that every party has (a re-run from that task; partners approve it as such).
    Resume {
        id: String,
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        target: Target,
    },
}

pub fn job(cmd: JobCommand) -> anyhow::Result<()> {
    match cmd {
        JobCommand::Schedule {
            file,
            cron,
            name,
            timezone,
            target,
        } => crate::schedule_cmd::create(&file, &cron, name, timezone, &target)?,
        JobCommand::Submit { file, wait, target } => {
            let spec = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let client = target.client()?;
            let v = client.post_text("/api/v1/jobs", &spec)?;
            let id = text(&v["job_id"]);
            if target.json && !wait {
                return print_json(&v);
            }
            println!("submitted job {id}");
            if wait {
                let status = wait_for_job(&client, &id, true)?;
                print_status(&client.get(&format!("/api/v1/jobs/{id}"))?);
                if status != "succeeded" {
                    bail!("job {id} {status}");
                }
            }
        }
        JobCommand::List { target } => {
            let list = target.client()?.get("/api/v1/jobs")?;
            if target.json {
                return print_json(&list);
            }
            let rows = table::rows(&list, |j| {
                [
                    "id",
                    "name",
                    "initiator",
                    "role",
                    "status",
                    "updated_at",
                    "reason",
                ]
                .iter()
                .map(|k| text(&j[*k]))
                .collect()
            });
            table::print(
                "",
                &[
                    left("id"),
                    left("name"),
                    left("initiator"),
                    left("role"),
                    left("status"),
                    left("updated"),
                    left("reason"),
                ],
                &rows,
            );
        }
        JobCommand::Status { id, watch, target } => {
            let client = target.client()?;
            if watch {
                wait_for_job(&client, &id, true)?;
            }
            let v = client.get(&format!("/api/v1/jobs/{id}"))?;
            if target.json {
                return print_json(&v);
            }
            print_status(&v);
        }
        JobCommand::Watch { id, target } => watch_job(&target.client()?, &id, target.json)?,
        JobCommand::Logs { id, task, target } => {
            let client = target.client()?;
            let q = task
                .as_ref()
                .map(|t| format!("?task={t}"))
                .unwrap_or_default();
            let logs = client.get(&format!("/api/v1/jobs/{id}/logs{q}"))?;
            let metrics = client.get(&format!("/api/v1/jobs/{id}/metrics{q}"))?;
            if target.json {
                return print_json(&json!({"logs": logs, "metrics": metrics}));
            }
            for l in logs.as_array().into_iter().flatten() {
                println!(
                    "{} [{}] {}",
                    text(&l["at"]),
                    text(&l["task"]),
                    text(&l["line"])
                );
            }
            let metrics = metrics.as_array().cloned().unwrap_or_default();
            if !metrics.is_empty() {
                println!();
                let rows: Vec<Vec<String>> = metrics
                    .iter()
                    .map(|m| {
                        vec![
                            text(&m["task"]),
                            text(&m["name"]),
                            number(&m["step"]),
                            number(&m["value"]),
                        ]
                    })
                    .collect();
                table::print(
                    "",
                    &[left("task"), left("metric"), right("step"), right("value")],
                    &rows,
                );
            }
        }
        JobCommand::Audit { id, target } => {
            let audit = target.client()?.get(&format!("/api/v1/jobs/{id}/audit"))?;
            if target.json {
                return print_json(&audit);
            }
            let rows = table::rows(&audit, |e| {
                vec![
                    text(&e["task"]),
                    text(&e["direction"]),
                    text(&e["peer"]),
                    number(&e["bytes"]),
                    text(&e["tag"]),
                    text(&e["payload_type"]),
                ]
            });
            table::print(
                "",
                &[
                    left("task"),
                    left("direction"),
                    left("peer"),
                    right("bytes"),
                    left("tag"),
                    left("payload type"),
                ],
                &rows,
            );
        }
        JobCommand::Privacy { id, target } => {
            let v = target
                .client()?
                .get(&format!("/api/v1/jobs/{id}/privacy"))?;
            if target.json {
                return print_json(&v);
            }
            let report: ferry_node::privacy::PrivacyReport = serde_json::from_value(v)
                .context("the node's privacy report is not one this ferry reads")?;
            print!("{}", report.to_text());
        }
        JobCommand::Approve { id, target } => {
            target
                .client()?
                .post_json(&format!("/api/v1/jobs/{id}/approve"), &json!({}))?;
            println!("approved job {id}");
        }
        JobCommand::Reject { id, reason, target } => {
            target.client()?.post_json(
                &format!("/api/v1/jobs/{id}/reject"),
                &json!({ "reason": reason }),
            )?;
            println!("rejected job {id}; the proposer was told: {reason}");
        }
        JobCommand::Cancel { id, reason, target } => {
            target.client()?.post_json(
                &format!("/api/v1/jobs/{id}/cancel"),
                &json!({"reason": reason}),
            )?;
            println!("cancelled job {id}");
        }
        JobCommand::Rerun {
            id,
            from,
            wait,
            target,
        } => {
            let client = target.client()?;
            let v =
                client.post_json(&format!("/api/v1/jobs/{id}/rerun"), &json!({"from": from}))?;
            let new_id = text(&v["job_id"]);
            println!("submitted job {new_id}: job {id} again from task '{from}'");
            if wait {
                let status = wait_for_job(&client, &new_id, true)?;
                if status != "succeeded" {
                    bail!("job {new_id} {status}");
                }
            }
        }
        JobCommand::Resume { id, wait, target } => {
            let client = target.client()?;
            let v = client.post_json(&format!("/api/v1/jobs/{id}/resume"), &json!({}))?;
            let new_id = text(&v["job_id"]);
            println!(
                "submitted job {new_id}: job {id} resumed at task '{}' from its checkpoints",
                text(&v["task"])
            );
            if wait {
                let status = wait_for_job(&client, &new_id, true)?;
                if status != "succeeded" {
                    bail!("job {new_id} {status}");
                }
            }
        }
    }
    Ok(())
}

/// `ferry job watch`: prints each change of the job from `GET /api/v1/events?job=ID` (as JSON
/// lines with `--json`) until it finishes; an error unless it succeeded.
fn watch_job(client: &ApiClient, id: &str, json: bool) -> anyhow::Result<()> {
    use ferry_api::events::{JOB_EVENT, JobEvent};
    let start = Instant::now();
    let mut last: Option<JobEvent> = None;
    client.follow_events(&format!("/api/v1/events?job={id}"), |name, data| {
        if name != JOB_EVENT {
            return Ok(true);
        }
        let ev: JobEvent = serde_json::from_str(data)
            .with_context(|| format!("job {id}: an event the CLI cannot read: {data}"))?;
        if json {
            println!("{data}");
        } else {
            let tasks: Vec<String> = ev
                .tasks
                .iter()
                .map(|t| {
                    let status = serde_json::to_value(t.status).unwrap_or_default();
                    format!("{} {} {:.0}%", t.task, text(&status), 100.0 * t.progress)
                })
                .collect();
            let parties: Vec<String> = ev
                .parties
                .iter()
                .map(|p| format!("{} {}", p.party, p.status.as_str()))
                .collect();
            println!(
                "{:>6.1} s  {:<17} {}  |  {}",
                start.elapsed().as_secs_f64(),
                ev.status.as_str(),
                tasks.join(", "),
                parties.join(", ")
            );
        }
        let done = ev.status.is_terminal();
        last = Some(ev);
        Ok(!done)
    })?;
    match last {
        Some(ev) if ev.status == ferry_api::JobStatus::Succeeded => Ok(()),
        Some(ev) => bail!(
            "job {id} {}{}",
            ev.status.as_str(),
            ev.reason.map(|r| format!(": {r}")).unwrap_or_default()
        ),
        None => bail!("job {id}: the node ended the event stream before sending the job"),
    }
}

/// Polls until the job ends, drawing a progress bar on a terminal; returns the final status.
pub fn wait_for_job(client: &ApiClient, id: &str, show: bool) -> anyhow::Result<String> {
    use ferry_api::TaskStatus;
    let start = Instant::now();
    let mut last_line = String::new();
    loop {
        let v: ferry_api::JobDetail = client.get_typed(&format!("/api/v1/jobs/{id}"))?;
        let status = v.job.status.as_str().to_string();
        let total = v.tasks.len().max(1) as f64;
        let done: f64 = v
            .tasks
            .iter()
            .map(|t| match t.status {
                TaskStatus::Succeeded | TaskStatus::Skipped => 1.0,
                TaskStatus::Running => t.progress,
                _ => 0.0,
            })
            .sum();
        let running = v
            .tasks
            .iter()
            .find(|t| t.status == TaskStatus::Running)
            .map(|t| t.task.clone())
            .unwrap_or_default();
        if show && !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            // Not a terminal: one line per change of status or running task, no redrawing.
            let line = format!("{status} {running}");
            if line != last_line {
                eprintln!(
                    "  {:>5.1} s  {status:<17} {running}",
                    start.elapsed().as_secs_f64()
                );
                last_line = line;
            }
        } else if show {
            let width = 30;
            let filled = ((done / total) * width as f64).round() as usize;
            let line = format!(
                "[{}{}] {:>3.0}%  {:<17} {:<14} {:>5.1} s ",
                "#".repeat(filled.min(width)),
                "-".repeat(width - filled.min(width)),
                (100.0 * done / total).max(0.0),
                status,
                running,
                start.elapsed().as_secs_f64()
            );
            if line != last_line {
                eprint!("\r{line}");
                let _ = std::io::stderr().flush();
                last_line = line;
            }
        }
        if v.job.status.is_terminal() {
            if show && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!();
            }
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn print_status(v: &Value) {
    let j = &v["job"];
    println!(
        "job {}  ({})  status: {}",
        text(&j["id"]),
        text(&j["spec"]["name"]),
        text(&j["status"])
    );
    if !j["reason"].is_null() {
        println!("  {}", text(&j["reason"]));
    }
    println!(
        "  initiator {}, this node is {}, files in {}",
        text(&j["initiator"]),
        text(&j["role"]),
        text(&v["files"])
    );
    // What an approver must see before saying yes: key sizes, PSI key mode, secure
    // aggregation, DP, datasets and models read, reused outputs.
    if let Some(lines) = v["security"].as_array().filter(|l| !l.is_empty()) {
        println!();
        println!("  security-relevant settings:");
        for l in lines {
            println!("    {}", text(l));
        }
    }
    println!();
    let tasks = table::rows(&v["tasks"], |t| {
        let detail = if t["error"].is_null() {
            summarize_outputs(&t["outputs"])
        } else {
            text(&t["error"])
        };
        vec![
            text(&t["task"]),
            text(&t["status"]),
            format!("{:.0}%", t["progress"].as_f64().unwrap_or(0.0) * 100.0),
            detail,
        ]
    });
    table::print(
        "  ",
        &[
            left("task"),
            left("status"),
            right("progress"),
            left("outputs / error"),
        ],
        &tasks,
    );
    println!();
    let parties = table::rows(&v["parties"], |p| {
        vec![text(&p["party"]), text(&p["status"]), text(&p["reason"])]
    });
    table::print(
        "  ",
        &[left("party"), left("status"), left("reason")],
        &parties,
    );
}

#[derive(Subcommand)]
pub enum TemplateCommand {
    /// The templates this binary ships.
    List,
    /// A template filled in for your parties, ready for `ferry job submit`.
    Show {
        /// scorecard or marketing (see `ferry template list`).
        name: String,
        /// The guest and its dataset, as PARTY=DATASET (e.g. bank=customers).
        #[arg(long)]
        guest: String,
        /// Each host and its dataset, as PARTY=DATASET; repeat for several hosts.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Homomorphic scheme: paillier or ou.
        #[arg(long, default_value = "paillier")]
        scheme: String,
    },
}

/// `PARTY=DATASET`.
fn party_dataset(arg: &str) -> anyhow::Result<(String, String)> {
    match arg.split_once('=') {
        Some((p, d)) if !p.is_empty() && !d.is_empty() => Ok((p.to_string(), d.to_string())),
        _ => anyhow::bail!("'{arg}' is not PARTY=DATASET (e.g. bank=customers)"),
    }
}

pub fn template(cmd: TemplateCommand) -> anyhow::Result<()> {
    use ferry_node::templates::{Fill, TEMPLATES, find};
    match cmd {
        TemplateCommand::List => {
            for t in TEMPLATES {
                println!("{:<12} {} / {}", t.name, t.title_en, t.title_zh);
                println!("{:<12} {}", "", t.description);
            }
            println!(
                "\nfill one in: ferry template show scorecard --guest bank=customers --host telco=usage > job.yaml"
            );
            Ok(())
        }
        TemplateCommand::Show {
            name,
            guest,
            hosts,
            scheme,
        } => {
            let t = find(&name).with_context(|| {
                format!(
                    "no template '{name}' (known: {})",
                    TEMPLATES
                        .iter()
                        .map(|t| t.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let guest = party_dataset(&guest)?;
            let hosts: Vec<(String, String)> = hosts
                .iter()
                .map(|h| party_dataset(h))
                .collect::<anyhow::Result<_>>()?;
            let host_names: Vec<&str> = hosts.iter().map(|(p, _)| p.as_str()).collect();
            let mut datasets = vec![(guest.0.as_str(), guest.1.as_str())];
            datasets.extend(hosts.iter().map(|(p, d)| (p.as_str(), d.as_str())));
            print!(
                "{}",
                t.render(&Fill {
                    guest: &guest.0,
                    hosts: &host_names,
                    datasets: &datasets,
                    scheme: &scheme,
                })?
            );
            Ok(())
        }
    }
}

/// `ferry components`: the registry this binary was built with.
pub fn components(as_json: bool) -> anyhow::Result<()> {
    let all = ferry_node::components::describe_all();
    if as_json {
        return print_json(&all);
    }
    let slots = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        let name = s["name"].as_str().unwrap_or_default();
                        if s["required"] == false {
                            format!("{name}?")
                        } else {
                            name.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    for c in all.as_array().into_iter().flatten() {
        println!(
            "{:<20} {} -> {}\n{:<20} {}",
            c["name"].as_str().unwrap_or_default(),
            match slots(&c["inputs"]) {
                s if s.is_empty() => "-".to_string(),
                s => s,
            },
            slots(&c["outputs"]),
            "",
            c["summary"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

fn summarize_outputs(outputs: &Value) -> String {
    let Some(map) = outputs.as_object() else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| {
            if let Some(d) = v.get("dataset") {
                format!("{k}: dataset {}", text(d))
            } else if let Some(m) = v.get("model") {
                format!("{k}: model {} v{}", text(m), v["version"])
            } else if let Some(h) = v.get("headline").and_then(Value::as_object) {
                // The headline figures of the evaluation's kind: AUC/KS/..., RMSE/MAE/R², ...
                let figures: Vec<String> = h
                    .iter()
                    .map(|(name, x)| {
                        format!(
                            "{} {:.4}",
                            name.to_uppercase(),
                            x.as_f64().unwrap_or(f64::NAN)
                        )
                    })
                    .collect();
                format!("{k}: {}", figures.join(", "))
            } else if v.get("artifact").and_then(Value::as_str) == Some("report") {
                format!("{k}: report")
            } else if v.is_null() {
                format!("{k}: -")
            } else {
                format!("{k}: ...")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

// -------------------------------------------------------------------------------------------

#[derive(Subcommand)]
pub enum ModelCommand {
    /// List stored models (this node's parts).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Show a model's record; its content hash and signature are checked.
    Show {
        name: String,
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a model version (or all versions).
    Delete {
        name: String,
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        target: Target,
    },
    /// Deploy a model (this node's guest part) as an online service; the hosts holding its
    /// other parts approve it (`ferry service approve` on their nodes).
    Deploy(crate::service_cmd::DeployArgs),
}

pub fn model(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Deploy(args) => crate::service_cmd::deploy(args)?,
        ModelCommand::List { target } => {
            let list: Vec<ferry_api::Model> = target.client()?.get_typed("/api/v1/models")?;
            if target.json {
                return print_json(&serde_json::to_value(&list)?);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        m.version.to_string(),
                        m.kind.clone(),
                        m.role.clone(),
                        m.bytes.to_string(),
                        m.created_at.clone(),
                        format!("{}/{}", m.lineage.job_id, m.lineage.task),
                    ]
                })
                .collect();
            table::print(
                "",
                &[
                    left("name"),
                    right("v"),
                    left("kind"),
                    left("role"),
                    right("bytes"),
                    left("created"),
                    left("job/task"),
                ],
                &rows,
            );
        }
        ModelCommand::Show {
            name,
            version,
            target,
        } => {
            let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
            let v = target.client()?.get(&format!("/api/v1/models/{name}{q}"))?;
            if target.json {
                return print_json(&v);
            }
            let m = &v["model"];
            println!(
                "model     {} v{} ({}, {} part)",
                text(&m["name"]),
                m["version"],
                text(&m["kind"]),
                text(&m["role"])
            );
            println!("file      {}  ({} bytes)", text(&m["path"]), m["bytes"]);
            println!("sha256    {}", text(&m["sha256"]));
            println!("signature verified with this node's key");
            println!(
                "lineage   job {} task {} datasets {}",
                text(&m["lineage"]["job_id"]),
                text(&m["lineage"]["task"]),
                m["lineage"]["datasets"]
            );
            println!("params    {}", m["lineage"]["params"]);
            println!("metrics   {}", m["metrics"]);
        }
        ModelCommand::Delete {
            name,
            version,
            target,
        } => {
            let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
            target
                .client()?
                .delete(&format!("/api/v1/models/{name}{q}"))?;
            println!(
                "deleted model '{name}'{}",
                version.map(|v| format!(" v{v}")).unwrap_or_default()
            );
        }
    }
    Ok(())
}
