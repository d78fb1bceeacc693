//! `ferry audit ...`: the node's action log (who did what, to which object, when, from where,
//! with what outcome), its hash chain and the signed checkpoints nodes exchange.

use crate::node_cmds::Target;
use crate::table::text;
use crate::table::{self, left, right};
use anyhow::{Context as _, bail};
use clap::Subcommand;
use ferry_store::{ActionEntry, ChainReport, ChainVerifier, Checkpoint, HeldCheckpoint};
use ferry_transport::NodeDir;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the action log's hash chain and check it against this node's signed
    /// checkpoints (and, with --checkpoints, against those a partner kept); names the first
    /// entry that does not match and exits with status 1 if any does.
    Verify {
        /// Checkpoints of this node that a partner kept: the file `ferry audit checkpoints
        /// --partner <this node> --out FILE` wrote on the partner's node.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Write entries to a file: JSON lines (exact; what the chain's hashes cover) or CSV.
    Export {
        /// First time included: a UTC time or a leading part of one (2024-05-01).
        #[arg(long)]
        from: Option<String>,
        /// Last time included; a date includes its whole day.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Show entries.
    List {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// Only the last N entries.
        #[arg(long)]
        last: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// Sign a checkpoint of the chain head now and send it to every partner.
    Checkpoint {
        #[command(flatten)]
        target: Target,
    },
    /// The checkpoints this node signed and those partners sent it.
    Checkpoints {
        /// Only those this partner sent.
        #[arg(long)]
        partner: Option<String>,
        /// Write the partner's checkpoints to this file (JSON), for `ferry audit verify
        /// --checkpoints FILE` on the partner's node.
        #[arg(long, requires = "partner")]
        out: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
}

/// Percent-encodes a query value (times and names need little, but nothing is assumed).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The first 12 hex digits of a hash (enough to compare by eye).
fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn print_report(title: &str, r: &ChainReport) {
    println!(
        "{title}: {} entries, head {}, {} checkpoint(s) compared{}",
        r.entries,
        match (&r.head_seq, &r.head_hash) {
            (Some(seq), Some(hash)) => format!("entry {seq} ({}…)", short(hash)),
            _ => "none".to_string(),
        },
        r.checkpoints_checked,
        r.last_matching_checkpoint
            .map(|s| format!(", the newest matching at entry {s}"))
            .unwrap_or_default()
    );
    match &r.first_problem {
        None => println!("  OK: every entry matches its hash, its predecessor and the checkpoints"),
        Some(first) => {
            println!("  FAILED at entry {}: {}", first.seq, first.message);
            if r.problems.len() > 1 || r.more_problems > 0 {
                println!("  every problem found:");
                for p in &r.problems {
                    println!(
                        "    entry {:>6}  {:<19}  {}",
                        p.seq,
                        json!(p.kind).as_str().unwrap_or(""),
                        p.message
                    );
                }
                if r.more_problems > 0 {
                    println!("    … and {} more", r.more_problems);
                }
            }
        }
    }
}

/// Checkpoints in a file: the array `ferry audit checkpoints --out` writes, or the whole
/// answer of `GET /api/v1/audit/checkpoints` (its `received` list).
fn read_checkpoints(file: &Path) -> anyhow::Result<Vec<Checkpoint>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", file.display()))?;
    let list = match value {
        Value::Object(mut map) => map.remove("received").unwrap_or(Value::Null),
        other => other,
    };
    let Value::Array(items) = list else {
        bail!(
            "{}: expected a list of checkpoints (write one with `ferry audit checkpoints --partner P --out FILE`)",
            file.display()
        );
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(item)
                .with_context(|| format!("{}: checkpoint {} is malformed", file.display(), i + 1))
        })
        .collect()
}

/// The node's certificate, to check the signatures of checkpoints kept elsewhere (`None`
/// without a node directory here).
fn node_certificate(target: &Target) -> Option<Vec<u8>> {
    let dir = NodeDir::open(target.dir()).ok()?;
    Some(dir.identity().ok()?.cert_der().ok()?.to_vec())
}

/// Checks the chain as the node serves it (`export`, JSON lines) against checkpoints of this
/// node that a partner kept.
fn verify_against(target: &Target, file: &Path, party: &str) -> anyhow::Result<ChainReport> {
    let client = target.client()?;
    let checkpoints = read_checkpoints(file)?;
    if let Some(other) = checkpoints.iter().find(|c| c.party != party) {
        bail!(
            "{}: holds checkpoints of '{}', not of this node '{party}'",
            file.display(),
            other.party
        );
    }
    let holder = format!("{}", file.display());
    let cert = node_certificate(target);
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for cp in checkpoints {
        let held = HeldCheckpoint {
            checkpoint: cp,
            holder: holder.clone(),
        };
        // An SM2 checkpoint (gm suite): its key binding with the node's certificate, then the
        // SM2 signature with the bound key.
        let signed = match &cert {
            None => true,
            Some(der) => held
                .checkpoint
                .verify_signature(
                    |msg, sig| ferry_store::actions::verify_with_certificate(der, msg, sig),
                    "this node's certificate",
                )
                .is_ok(),
        };
        if signed {
            good.push(held);
        } else {
            bad.push(held);
        }
    }
    if cert.is_none() {
        eprintln!(
            "note: no node directory here, so the signatures in {} were not checked (the partner checked them on receipt)",
            file.display()
        );
    }
    let mut verifier = ChainVerifier::new(good);
    for held in &bad {
        verifier.bad_signature(held);
    }
    let text = client.get_text("/api/v1/audit/export?format=jsonl")?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry: ActionEntry = serde_json::from_str(line)
            .with_context(|| format!("the node's export, line {}: not an entry", i + 1))?;
        verifier.push(&entry);
    }
    Ok(verifier.finish())
}

/// A checkpoint's signature algorithm as the API names it (absent in answers of nodes from
/// before SM2 checkpoints: ECDSA P-256).
fn algorithm(cp: &serde_json::Value) -> String {
    cp["algorithm"]
        .as_str()
        .unwrap_or("ecdsa-p256-sha256")
        .to_string()
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify {
            checkpoints,
            target,
        } => {
            let client = target.client()?;
            let answer = client.get("/api/v1/audit/verify")?;
            let report: ChainReport = serde_json::from_value(answer.clone())
                .context("the node's verification report is malformed")?;
            let party = text(&client.get("/api/v1/node")?["party"]);
            let external = match &checkpoints {
                Some(file) => Some(verify_against(&target, file, &party)?),
                None => None,
            };
            if target.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"node": answer, "partner_checkpoints": external})
                    )?
                );
            } else {
                print_report(&format!("action log of '{party}'"), &report);
                if let (Some(r), Some(file)) = (&external, &checkpoints) {
                    print_report(&format!("against the checkpoints in {}", file.display()), r);
                }
            }
            if !report.ok || external.as_ref().is_some_and(|r| !r.ok) {
                bail!("the action log does not match (see above)");
            }
            Ok(())
        }
        AuditCommand::Export {
            from,
            to,
            format,
            out,
            target,
        } => {
            let client = target.client()?;
            let path = format!(
                "/api/v1/audit/export{}",
                query(&[("from", from), ("to", to), ("format", Some(format.clone()))])
            );
            let text = client.get_text(&path)?;
            std::fs::write(&out, &text)
                .with_context(|| format!("cannot write {}", out.display()))?;
            let rows = if format == "csv" {
                csv::Reader::from_reader(text.as_bytes()).records().count()
            } else {
                text.lines().filter(|l| !l.trim().is_empty()).count()
            };
            eprintln!("wrote {rows} entries to {} ({format})", out.display());
            Ok(())
        }
        AuditCommand::List {
            from,
            to,
            last,
            target,
        } => {
            let client = target.client()?;
            let mut list = client.get(&format!(
                "/api/v1/audit{}",
                query(&[("from", from), ("to", to)])
            ))?;
            if let (Some(n), Some(items)) = (last, list.as_array_mut()) {
                let keep = usize::try_from(n).unwrap_or(usize::MAX);
                let drop = items.len().saturating_sub(keep);
                items.drain(..drop);
            }
            if target.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows = table::rows(&list, |e| {
                vec![
                    text(&e["seq"]),
                    text(&e["at"]),
                    text(&e["actor"]),
                    text(&e["action"]),
                    text(&e["object"]),
                    text(&e["address"]),
                    match (e["outcome"].as_str(), e["status"].as_u64()) {
                        (Some(o), Some(code)) => format!("{o} {code}"),
                        (Some(o), None) => o.to_string(),
                        _ => String::new(),
                    },
                    text(&e["detail"]).replace('\n', " "),
                ]
            });
            table::print(
                "",
                &[
                    right("seq"),
                    left("at"),
                    left("actor"),
                    left("action"),
                    left("object"),
                    left("from"),
                    left("outcome"),
                    left("detail"),
                ],
                &rows,
            );
            Ok(())
        }
        AuditCommand::Checkpoint { target } => {
            let client = target.client()?;
            let answer = client.post_json("/api/v1/audit/checkpoint", &json!({}))?;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else if answer.is_null() {
                println!("the action log is empty: nothing to sign");
            } else {
                let cp = &answer["checkpoint"];
                let sent: Vec<String> = answer["sent_to"]
                    .as_array()
                    .map(|a| a.iter().map(text).collect())
                    .unwrap_or_default();
                println!(
                    "signed entry {} ({}) at {} with {}; sent to {}",
                    text(&cp["seq"]),
                    text(&cp["hash"]),
                    text(&cp["signed_at"]),
                    algorithm(cp),
                    if sent.is_empty() {
                        "no partner (none is pinned)".to_string()
                    } else {
                        sent.join(", ")
                    }
                );
            }
            Ok(())
        }
        AuditCommand::Checkpoints {
            partner,
            out,
            target,
        } => {
            let client = target.client()?;
            let answer = client.get(&format!(
                "/api/v1/audit/checkpoints{}",
                query(&[("partner", partner.clone())])
            ))?;
            if let Some(out) = out {
                let received = answer["received"].clone();
                let n = received.as_array().map_or(0, Vec::len);
                std::fs::write(&out, serde_json::to_string_pretty(&received)?)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                eprintln!(
                    "wrote {n} checkpoint(s) of '{}' to {}",
                    partner.unwrap_or_default(),
                    out.display()
                );
                return Ok(());
            }
            if target.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(());
            }
            if partner.is_none() {
                println!("signed by this node ('{}'):", text(&answer["party"]));
                let rows = table::rows(&answer["own"], |c| {
                    vec![
                        text(&c["seq"]),
                        text(&c["signed_at"]),
                        algorithm(c),
                        text(&c["hash"]),
                    ]
                });
                table::print(
                    "  ",
                    &[
                        right("entry"),
                        left("signed at"),
                        left("algorithm"),
                        left("hash"),
                    ],
                    &rows,
                );
            }
            println!("received from partners:");
            let rows = table::rows(&answer["received"], |c| {
                vec![
                    text(&c["party"]),
                    text(&c["seq"]),
                    text(&c["signed_at"]),
                    text(&c["received_at"]),
                    algorithm(c),
                    text(&c["hash"]),
                ]
            });
            table::print(
                "  ",
                &[
                    left("partner"),
                    right("entry"),
                    left("signed at"),
                    left("received at"),
                    left("algorithm"),
                    left("hash"),
                ],
                &rows,
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query(&[("from", None)]), "");
        assert_eq!(
            query(&[
                ("from", Some("2024-05-01T12:00".into())),
                ("partner", Some("a b&c".into()))
            ]),
            "?from=2024-05-01T12:00&partner=a%20b%26c"
        );
    }
}
