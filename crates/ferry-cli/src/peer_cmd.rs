//! `ferry peer ...`: the partners this node trusts (pinned certificates and addresses).
//!
//! With the node running, every command goes through its API and takes effect at once (a
//! partner added can connect and take part in jobs, one removed is cut off, a rotation accepts
//! both certificates for the overlap). With the node stopped (or `--offline`), the commands
//! edit `ferry.toml` and `peers/` directly and take effect when `ferry serve` starts.

use crate::node_cmds::Target;
use crate::table::{self, left, text};
use anyhow::Context;
use clap::Subcommand;
use ferry_context::PartyId;
use ferry_transport::NodeDir;
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum PeerCommand {
    /// Pin a partner: its federation address and certificate file.
    Add {
        name: String,
        #[arg(long)]
        addr: String,
        #[arg(long)]
        cert: PathBuf,
        /// Edit the node directory even if the node is running (it then learns of the partner
        /// only at its next start).
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        target: Target,
    },
    /// List pinned partners (with a rotation's previous certificate while it is accepted).
    List {
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a partner: its connections are cut, its unfinished jobs with this node are
    /// cancelled (the reason reaches the other parties), its certificate files are kept under
    /// peers/removed/.
    Remove {
        name: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Pin a partner's new certificate; the current one stays accepted for the overlap, so
    /// the partner can switch keys at any moment of it.
    Rotate {
        name: String,
        /// The partner's new certificate file.
        #[arg(long)]
        cert: PathBuf,
        /// Hours the previous certificate stays accepted (default 24, at most 720).
        #[arg(long)]
        overlap_hours: Option<f64>,
        /// The partner's new federation address, if it moves too.
        #[arg(long)]
        addr: Option<String>,
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// The node's API client if the node answers, `None` if it is not running (or `--offline`).
fn running_node(target: &Target, offline: bool) -> Option<crate::client::ApiClient> {
    if offline {
        return None;
    }
    let client = target.client().ok()?;
    client.get("/api/v1/health").ok()?;
    Some(client)
}

fn read_cert(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the certificate file {}", path.display()))
}

/// Records an offline change of the partners in the node's action log.
fn record_offline(dir: &std::path::Path, action: &str, object: String) -> anyhow::Result<()> {
    let (_, store) = crate::node_cmds::open_store(dir)?;
    crate::node_cmds::record_cli_action(&store, action, object)
}

fn not_running_note(dir: &std::path::Path) {
    println!(
        "the node at {} is not running: the change is in ferry.toml and takes effect when `ferry serve` starts",
        dir.display()
    );
}

pub fn run(cmd: PeerCommand) -> anyhow::Result<()> {
    match cmd {
        PeerCommand::Add {
            name,
            addr,
            cert,
            offline,
            target,
        } => {
            let (name, fingerprint, addr) = match running_node(&target, offline) {
                Some(client) => {
                    let v = client.post_json(
                        "/api/v1/partners",
                        &json!({"name": name, "addr": addr, "cert_pem": read_cert(&cert)?}),
                    )?;
                    (text(&v["name"]), text(&v["fingerprint"]), text(&v["addr"]))
                }
                None => {
                    let dir = target.dir();
                    let mut node = NodeDir::open(&dir)?;
                    let entry = node.add_peer(&PartyId::new(name)?, &addr, &cert)?;
                    record_offline(
                        &dir,
                        "partner.add",
                        format!("name={}; fingerprint={}", entry.name, entry.fingerprint),
                    )?;
                    not_running_note(&dir);
                    (entry.name, entry.fingerprint, entry.addr)
                }
            };
            println!("pinned '{name}' at {addr} (certificate fingerprint {fingerprint})");
            println!("only this certificate will be accepted for '{name}', in both directions");
        }
        PeerCommand::List { offline, target } => {
            let partners: Value = match running_node(&target, offline) {
                Some(client) => client.get("/api/v1/partners")?,
                None => {
                    let node = NodeDir::open(target.dir())?;
                    serde_json::to_value(&node.config.peers)?
                }
            };
            if target.json {
                println!("{}", serde_json::to_string_pretty(&partners)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = partners
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let rotation = match (
                        p["previous_fingerprint"].as_str(),
                        p["previous_valid_until"].as_str(),
                    ) {
                        (Some(f), Some(until)) => format!("previous {f} accepted until {until}"),
                        _ => String::new(),
                    };
                    vec![
                        text(&p["name"]),
                        text(&p["addr"]),
                        text(&p["fingerprint"]),
                        rotation,
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("no partners pinned yet (ferry peer add ...)");
                return Ok(());
            }
            table::print(
                "",
                &[
                    left("partner"),
                    left("address"),
                    left("fingerprint"),
                    left("rotation"),
                ],
                &rows,
            );
        }
        PeerCommand::Remove {
            name,
            reason,
            offline,
            target,
        } => match running_node(&target, offline) {
            Some(client) => {
                let v = client.delete_json(
                    &format!("/api/v1/partners/{name}"),
                    &json!({"reason": reason}),
                )?;
                println!("removed partner '{name}': its connections are cut");
                let cancelled: Vec<String> = v["cancelled_jobs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                if !cancelled.is_empty() {
                    println!("cancelled its unfinished jobs: {}", cancelled.join(", "));
                }
            }
            None => {
                let dir = target.dir();
                let mut node = NodeDir::open(&dir)?;
                node.remove_peer(&PartyId::new(&name)?)?;
                record_offline(
                    &dir,
                    "partner.remove",
                    format!("name={name}; reason={reason}"),
                )?;
                println!("removed partner '{name}' (certificate kept under peers/removed/)");
                not_running_note(&dir);
            }
        },
        PeerCommand::Rotate {
            name,
            cert,
            overlap_hours,
            addr,
            offline,
            target,
        } => {
            let pem = read_cert(&cert)?;
            let hours = overlap_hours.unwrap_or(ferry_node::partners::DEFAULT_OVERLAP_HOURS);
            match running_node(&target, offline) {
                Some(client) => {
                    let v = client.post_json(
                        &format!("/api/v1/partners/{name}/rotate"),
                        &json!({"cert_pem": pem, "overlap_hours": hours, "addr": addr}),
                    )?;
                    println!(
                        "'{name}' is now pinned with {}; its previous certificate {} is accepted until {}",
                        text(&v["fingerprint"]),
                        text(&v["previous_fingerprint"]),
                        text(&v["previous_valid_until"])
                    );
                }
                None => {
                    if !(0.0..=ferry_node::partners::MAX_OVERLAP_HOURS).contains(&hours) {
                        anyhow::bail!(
                            "--overlap-hours {hours} is outside [0, {}]",
                            ferry_node::partners::MAX_OVERLAP_HOURS
                        );
                    }
                    let dir = target.dir();
                    let mut node = NodeDir::open(&dir)?;
                    let until = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_secs()
                        .saturating_add((hours * 3600.0) as u64);
                    let (entry, _) =
                        node.rotate_peer(&PartyId::new(&name)?, &pem, until, addr.as_deref())?;
                    record_offline(
                        &dir,
                        "partner.rotate",
                        format!("name={name}; fingerprint={}", entry.fingerprint),
                    )?;
                    println!(
                        "'{name}' is now pinned with {}; the previous certificate is accepted for {hours} h",
                        entry.fingerprint
                    );
                    not_running_note(&dir);
                }
            }
            println!(
                "'{name}' may now switch to its new key at any moment of the overlap (ferry identity activate on its node)"
            );
        }
    }
    Ok(())
}

/// `ferry identity ...`: rotating this node's own key, the other half of a partner's
/// `ferry peer rotate`.
#[derive(Subcommand)]
pub enum IdentityCommand {
    /// This node's certificate fingerprint (and a prepared next one).
    Show {
        #[command(flatten)]
        target: Target,
    },
    /// Make a new key and certificate next to the current ones (which stay in use): give
    /// identity/next-cert.pem to every partner for `ferry peer rotate`, then `activate`.
    Rotate {
        #[command(flatten)]
        target: Target,
    },
    /// Switch to the prepared key (with the node stopped; start it again afterwards). Do it
    /// within the overlap the partners gave when they pinned the new certificate.
    Activate {
        #[command(flatten)]
        target: Target,
    },
}

pub fn run_identity(cmd: IdentityCommand) -> anyhow::Result<()> {
    match cmd {
        IdentityCommand::Show { target } => {
            let node = NodeDir::open(target.dir())?;
            println!(
                "{}: certificate {} (fingerprint {})",
                node.party(),
                node.path(&node.config.cert_file).display(),
                node.identity()?.fingerprint()?
            );
            let (_, next_cert) = node.next_identity_paths();
            if next_cert.exists() {
                let pem = std::fs::read_to_string(&next_cert)?;
                let der = ferry_transport::identity::parse_cert_pem(&pem)?;
                println!(
                    "next: {} (fingerprint {}), not active yet",
                    next_cert.display(),
                    ferry_transport::identity::fingerprint(&der)
                );
            }
        }
        IdentityCommand::Rotate { target } => {
            let dir = target.dir();
            let node = NodeDir::open(&dir)?;
            let next = node.prepare_next_identity()?;
            let (_, cert) = node.next_identity_paths();
            println!(
                "prepared a new key; its certificate is {} (fingerprint {})",
                cert.display(),
                next.fingerprint()?
            );
            println!("the current key stays in use until you activate the new one. Next:");
            println!(
                "  1. each partner pins it: ferry peer rotate {} --cert next-cert.pem --overlap-hours 24",
                node.party()
            );
            println!(
                "  2. within that overlap, stop this node, run: ferry identity activate --dir {}",
                dir.display()
            );
            println!("     and start it again (ferry serve)");
        }
        IdentityCommand::Activate { target } => {
            let dir = target.dir();
            if running_node(&target, false).is_some() {
                anyhow::bail!(
                    "the node at {} is running: stop it first (it reads its key at start), then activate",
                    dir.display()
                );
            }
            let node = NodeDir::open(&dir)?;
            let next = node.activate_next_identity()?;
            println!(
                "this node now uses the new key (fingerprint {}); the old certificate is kept as identity/previous-cert.pem and the old key was deleted",
                next.fingerprint()?
            );
            println!("start the node again: ferry serve --dir {}", dir.display());
        }
    }
    Ok(())
}
