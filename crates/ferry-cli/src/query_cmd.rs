//! `ferry query ...`: anonymous query (匿踪查询). A provider publishes query services over its
//! datasets; a querier looks ids up in a partner's service without the partner learning which.

use crate::node_cmds::Target;
use crate::table::{self, left, right};
use crate::table::{print_json, text};
use anyhow::{Context as _, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum QueryCommand {
    /// Look ids up in a partner's query service: `--id X` prints the values, `--ids FILE
    /// --out FILE` queries a batch and writes the result (absent ids marked found=false).
    Run {
        /// The service's name on the provider's node.
        service: String,
        /// The partner that offers it.
        #[arg(long)]
        provider: String,
        /// One id. For a service keyed by several columns, the cells separated by commas
        /// (e.g. `--id passport,E123`).
        #[arg(long, conflicts_with = "ids")]
        id: Option<String>,
        /// A CSV file of ids, header first.
        #[arg(long, requires = "out")]
        ids: Option<PathBuf>,
        /// The column(s) of `--ids` holding the id, comma separated (default: every column).
        #[arg(long, requires = "ids")]
        column: Option<String>,
        /// Where to write the result of `--ids` (CSV: key columns, found, value columns).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// The queries this node ran (who asked, which partner and service, how many ids).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// One query's record.
    Show {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Write a query's result (CSV) to a file, or print it.
    Result {
        id: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Offer a query service over one of this node's datasets. Partners holding a grant on
    /// the dataset (`ferry dataset grant NAME --party P`) may query it.
    Publish {
        /// The service's name, as partners will ask for it.
        name: String,
        #[arg(long)]
        dataset: String,
        /// Key column(s), comma separated.
        #[arg(long)]
        key: String,
        /// Value columns, comma separated (none: a membership test).
        #[arg(long, default_value = "")]
        values: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Return at once instead of waiting for the table to be built.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        target: Target,
    },
    /// This node's query services.
    Services {
        #[command(flatten)]
        target: Target,
    },
    /// One service: its table version, the partners granted it, what each was served.
    Service {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Build the next version of a service's table from its dataset as it is now.
    Refresh {
        name: String,
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Stop offering a service (sessions already running finish).
    Unpublish {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The ids of a CSV file: the cells of `columns` (all columns if empty) of every row, each
/// non-empty. Errors name the file and the row (the header is row 1).
pub fn read_ids(path: &Path, columns: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header", path.display()))?
        .clone();
    let index: Vec<usize> = if columns.is_empty() {
        (0..header.len()).collect()
    } else {
        columns
            .iter()
            .map(|c| {
                header.iter().position(|h| h == c).with_context(|| {
                    format!(
                        "{}: no column '{c}' (the header has: {})",
                        path.display(),
                        header.iter().collect::<Vec<_>>().join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut ids = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        let record = record.with_context(|| format!("{}, row {row}", path.display()))?;
        let cells: Vec<String> = index
            .iter()
            .map(|&j| record.get(j).unwrap_or("").to_string())
            .collect();
        if let Some(k) = cells.iter().position(String::is_empty) {
            bail!(
                "{}, row {row}: the id cell of column '{}' is empty",
                path.display(),
                &header[index[k]]
            );
        }
        ids.push(cells);
    }
    if ids.is_empty() {
        bail!(
            "{}: no ids (only a header, or an empty file)",
            path.display()
        );
    }
    Ok(ids)
}

fn print_service(v: &Value) {
    let svc = &v["service"];
    println!("service      {}", text(&svc["name"]));
    println!("dataset      {}", text(&svc["dataset"]));
    println!(
        "key          {}",
        svc["key_columns"]
            .as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    println!(
        "values       {}",
        svc["value_columns"]
            .as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    println!(
        "status       {}{}",
        text(&svc["status"]),
        svc["error"]
            .as_str()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    println!(
        "version      {} ({} rows, built {})",
        text(&svc["version"]),
        text(&svc["rows"]),
        text(&svc["built_at"])
    );
    if let Some(p) = v["partners"].as_array() {
        let names: Vec<String> = p.iter().map(text).collect();
        println!(
            "partners     {}",
            if names.is_empty() {
                "none (grant the dataset: ferry dataset grant DATASET --party P)".to_string()
            } else {
                names.join(", ")
            }
        );
    }
    if let Some(usage) = v["usage"].as_array().filter(|u| !u.is_empty()) {
        println!("served (counts only; the ids asked are never known here):");
        let rows = table::rows(&Value::Array(usage.clone()), |u| {
            vec![
                text(&u["partner"]),
                text(&u["sessions"]),
                text(&u["ids"]),
                text(&u["last_served_at"]),
            ]
        });
        table::print(
            "  ",
            &[
                left("partner"),
                right("sessions"),
                right("ids"),
                left("last served"),
            ],
            &rows,
        );
    }
}

pub fn run(cmd: QueryCommand) -> anyhow::Result<()> {
    match cmd {
        QueryCommand::Run {
            service,
            provider,
            id,
            ids,
            column,
            out,
            target,
        } => {
            let asked: Vec<Vec<String>> = match (&id, &ids) {
                (Some(id), None) => vec![id.split(',').map(str::to_string).collect()],
                (None, Some(file)) => read_ids(file, &list(column.as_deref().unwrap_or("")))?,
                _ => bail!("give one id (--id X) or a file of ids (--ids FILE --out FILE)"),
            };
            let client = target.client()?;
            let v = client.post_json(
                "/api/v1/queries",
                &json!({"provider": provider, "service": service, "ids": asked}),
            )?;
            let q = &v["query"];
            let qid = text(&q["id"]);
            if let Some(out) = out {
                let csv = client.get_text(&format!("/api/v1/queries/{qid}/result"))?;
                std::fs::write(&out, csv)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                if target.json {
                    return print_json(q);
                }
                println!(
                    "query {qid}: {} of {} ids found in '{service}' of '{provider}'; wrote {}",
                    text(&q["found"]),
                    text(&q["ids"]),
                    out.display()
                );
                return Ok(());
            }
            if target.json {
                return print_json(&v);
            }
            let keys: Vec<String> = v["key_columns"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            let values: Vec<String> = v["value_columns"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            for answer in v["answers"].as_array().into_iter().flatten() {
                let key = answer["key"]
                    .as_array()
                    .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","))
                    .unwrap_or_default();
                if answer["found"].as_bool() != Some(true) {
                    println!("{}={key}: absent", keys.join(","));
                    continue;
                }
                println!("{}={key}: found", keys.join(","));
                for (name, value) in values
                    .iter()
                    .zip(answer["values"].as_array().into_iter().flatten())
                {
                    println!("  {name} = {}", text(value));
                }
            }
            println!("(query {qid}; `ferry query result {qid} --out FILE` writes it as CSV)");
        }
        QueryCommand::List { target } => {
            let list: Vec<ferry_api::QueryRecord> =
                target.client()?.get_typed("/api/v1/queries")?;
            if target.json {
                return print_json(&serde_json::to_value(&list)?);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|q| {
                    vec![
                        q.id.clone(),
                        q.provider.clone(),
                        q.service.clone(),
                        q.ids.to_string(),
                        q.found.to_string(),
                        // The status's API name.
                        text(&serde_json::to_value(q.status).unwrap_or_default()),
                        q.requested_by.clone(),
                        q.started_at.clone(),
                    ]
                })
                .collect();
            table::print(
                "",
                &[
                    left("query"),
                    left("provider"),
                    left("service"),
                    right("ids"),
                    right("found"),
                    left("status"),
                    left("by"),
                    left("started"),
                ],
                &rows,
            );
        }
        QueryCommand::Show { id, target } => {
            let v = target.client()?.get(&format!("/api/v1/queries/{id}"))?;
            if target.json {
                return print_json(&v);
            }
            for key in [
                "id",
                "provider",
                "service",
                "requested_by",
                "status",
                "error",
                "ids",
                "found",
                "table_rows",
                "table_id",
                "hint_downloaded",
                "bytes_sent",
                "bytes_received",
                "seconds",
                "started_at",
                "finished_at",
            ] {
                if !v[key].is_null() {
                    println!("{key:<16} {}", text(&v[key]));
                }
            }
        }
        QueryCommand::Result { id, out, target } => {
            let csv = target
                .client()?
                .get_text(&format!("/api/v1/queries/{id}/result"))?;
            match out {
                Some(out) => {
                    std::fs::write(&out, csv)
                        .with_context(|| format!("cannot write {}", out.display()))?;
                    println!("wrote {}", out.display());
                }
                None => print!("{csv}"),
            }
        }
        QueryCommand::Publish {
            name,
            dataset,
            key,
            values,
            description,
            no_wait,
            target,
        } => {
            let v = target.client()?.post_json(
                "/api/v1/query-services",
                &json!({
                    "name": name, "dataset": dataset, "key_columns": list(&key),
                    "value_columns": list(&values), "description": description, "wait": !no_wait,
                }),
            )?;
            if target.json {
                return print_json(&v);
            }
            match text(&v["status"]).as_str() {
                "ready" => println!(
                    "query service '{name}' serves version {} ({} rows); partners granted dataset \
                     '{dataset}' may query it (`ferry dataset grant {dataset} --party P`)",
                    text(&v["version"]),
                    text(&v["rows"])
                ),
                "failed" => bail!(
                    "query service '{name}' was recorded but its table could not be built: {}\n\
                     fix the dataset, then `ferry query refresh {name}`",
                    text(&v["error"])
                ),
                other => println!(
                    "query service '{name}': {other}; `ferry query service {name}` shows when it is ready"
                ),
            }
        }
        QueryCommand::Services { target } => {
            let v = target.client()?.get("/api/v1/query-services")?;
            if target.json {
                return print_json(&v);
            }
            let rows = table::rows(&v, |svc| {
                vec![
                    text(&svc["name"]),
                    text(&svc["dataset"]),
                    text(&svc["version"]),
                    text(&svc["rows"]),
                    text(&svc["status"]),
                    text(&svc["error"]),
                ]
            });
            table::print(
                "",
                &[
                    left("service"),
                    left("dataset"),
                    right("version"),
                    right("rows"),
                    left("status"),
                    left("error"),
                ],
                &rows,
            );
        }
        QueryCommand::Service { name, target } => {
            let v = target
                .client()?
                .get(&format!("/api/v1/query-services/{name}"))?;
            if target.json {
                return print_json(&v);
            }
            print_service(&v);
        }
        QueryCommand::Refresh {
            name,
            no_wait,
            target,
        } => {
            let v = target.client()?.post_json(
                &format!("/api/v1/query-services/{name}/refresh?wait={}", !no_wait),
                &json!({}),
            )?;
            if target.json {
                return print_json(&v);
            }
            if text(&v["status"]) == "failed" {
                bail!(
                    "query service '{name}': the new version could not be built: {}; version {} still serves",
                    text(&v["error"]),
                    text(&v["version"])
                );
            }
            println!(
                "query service '{name}': version {}, {}",
                text(&v["version"]),
                text(&v["status"])
            );
        }
        QueryCommand::Unpublish { name, target } => {
            target
                .client()?
                .delete(&format!("/api/v1/query-services/{name}"))?;
            println!("query service '{name}' is no longer offered");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_named_columns_and_bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ids.csv");
        std::fs::write(&file, "name,type,no\nann,id_card,1101\nbob,passport,E1\n").unwrap();
        let ids = read_ids(&file, &list("type, no")).unwrap();
        assert_eq!(ids, vec![vec!["id_card", "1101"], vec!["passport", "E1"]]);
        assert_eq!(
            read_ids(&file, &[]).unwrap()[1],
            vec!["bob", "passport", "E1"]
        );
        let e = read_ids(&file, &list("phone")).unwrap_err().to_string();
        assert!(
            e.contains("no column 'phone'") && e.contains("name, type, no"),
            "{e}"
        );

        std::fs::write(&file, "phone\n1\n\n3\n").unwrap();
        // csv skips blank lines; an empty cell in a multi-column file is named by row.
        assert_eq!(read_ids(&file, &[]).unwrap().len(), 2);
        std::fs::write(&file, "a,b\n1,2\n3,\n").unwrap();
        let e = read_ids(&file, &[]).unwrap_err().to_string();
        assert!(
            e.contains("row 3") && e.contains("column 'b' is empty"),
            "{e}"
        );
        std::fs::write(&file, "phone\n").unwrap();
        assert!(
            read_ids(&file, &[])
                .unwrap_err()
                .to_string()
                .contains("no ids")
        );
    }
}
