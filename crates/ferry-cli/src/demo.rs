//! `ferry demo`: three organisations on this machine, a real multi-node job over TLS.
//!
//! A bank (guest, holds the default label), a telco and an insurer (hosts, hold features)
//! each get a node directory with a fresh identity, pin each other's certificates and start
//! `ferry serve`. Each registers its own generated data (the rows overlap only partly), grants
//! it to the bank, and the bank submits one job: PSI → SecureBoost → predict → evaluation and
//! PSI → hetero LR → predict → evaluation. The demo prints AUC/KS, where the models are, and
//! the CLI commands to look at everything.

use crate::client::ApiClient;
use crate::launch::prepare_nodes;
use crate::node_cmds::{
    create_admin_token, open_store, print_status, record_cli_action, wait_for_job,
};
use anyhow::{Context as _, bail};
use clap::Args;
use ferry_data::synthetic::{VerticalSpec, vertical};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DemoArgs {
    /// Where the demo's nodes live. An earlier demo there is replaced; any other existing
    /// directory is refused.
    #[arg(long, default_value = "ferry-demo")]
    dir: PathBuf,
    /// Rows of the generated population (each party holds about 85% of them).
    #[arg(long, default_value_t = 6000)]
    rows: usize,
    /// Only bank and telco (two nodes) instead of three.
    #[arg(long)]
    two: bool,
    /// Homomorphic scheme for SecureBoost and LR: paillier or ou.
    #[arg(long, default_value = "paillier")]
    scheme: String,
    /// Leave the nodes running when the demo ends (stop them with `kill`, see the output).
    #[arg(long)]
    keep: bool,
    /// Keep the nodes running after the demo, each with a console user, and print each
    /// node's console address and sign-in; Ctrl-C (or SIGTERM) stops them.
    #[arg(long, conflicts_with = "keep")]
    serve: bool,
    /// Run a shipped job template instead of the default job: `scorecard` (joint risk
    /// control) or `marketing` (see `ferry template list`).
    #[arg(long)]
    template: Option<String>,
}

const MARKER: &str = ".ferry-demo";
/// The console user `--serve` creates on every node.
const DEMO_USER: &str = "demo";
/// Letters and digits that cannot be mistaken for one another when read off a terminal.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789";
const PASSWORD_LEN: usize = 20;

struct Nodes {
    children: Vec<(String, Child)>,
    keep: bool,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for (_, child) in &mut self.children {
            // SIGTERM lets the node shut down cleanly; SIGKILL if it does not within 5 s.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, child) in &mut self.children {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            bail!(
                "{} exists and is not a Ferry demo directory; choose another with --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the previous demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        "created by `ferry demo`; the next demo run replaces this directory\n",
    )?;
    Ok(())
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let dir = if args.dir.is_absolute() {
        args.dir.clone()
    } else {
        std::env::current_dir()?.join(&args.dir)
    };
    prepare_dir(&dir)?;
    let exe = std::env::current_exe()?;
    let names: Vec<&str> = if args.two {
        vec!["bank", "telco"]
    } else {
        vec!["bank", "telco", "insurer"]
    };

    // 1. Data: one population, each party holds its own columns of a partly overlapping subset.
    println!(
        "1. generating data for {} ({} people in the population)",
        names.join(", "),
        args.rows
    );
    let features = if args.two {
        vec![8, 10]
    } else {
        vec![8, 10, 6]
    };
    let template = match &args.template {
        Some(name) => Some(ferry_node::templates::find(name).with_context(|| {
            format!(
                "no template '{name}' (known: {})",
                ferry_node::templates::TEMPLATES
                    .iter()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?),
        None => None,
    };
    // The scorecard template shows that raw data works as it comes: missing values and a
    // text column need no preprocessing.
    let raw = template.is_some_and(|t| t.name == "scorecard");
    let parts = vertical(&VerticalSpec {
        rows: args.rows,
        features,
        coverage: 0.85,
        missing: if raw { 0.05 } else { 0.0 },
        seed: 2026,
    });
    let inputs = dir.join("inputs");
    std::fs::create_dir_all(&inputs)?;
    let dataset_names = ["bank_customers", "telco_usage", "insurer_claims"];
    for (i, part) in parts.iter().enumerate() {
        let file = inputs.join(format!("{}.csv", dataset_names[i]));
        part.write_csv(&file)?;
        if raw && i == 1 {
            add_plan_column(&file)?;
        }
        println!(
            "   {:<8} {:>5} rows x {:>2} columns{}",
            names[i],
            part.n_rows(),
            part.n_features(),
            if i == 0 { " + label y" } else { "" }
        );
    }

    // 2. Nodes: identities, mutual pinning, approval policy, admin tokens, servers.
    println!(
        "2. creating {} nodes with fresh identities and pinning each other's certificates",
        names.len()
    );
    let roster_text = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n}:{}", if i == 0 { "guest" } else { "host" }))
        .collect::<Vec<_>>()
        .join(",");
    let roster = crate::launch::parse_roster(&roster_text)?;
    let node_dirs = prepare_nodes(&dir.join("nodes"), &roster)?;
    let mut clients = Vec::new();
    let mut nodes = Nodes {
        children: Vec::new(),
        keep: args.keep,
    };
    let mut passwords = Vec::new();
    for (i, (party, node_dir)) in node_dirs.iter().enumerate() {
        if i > 0 {
            // Hosts run partner jobs that pass their checks without a manual approval.
            let mut nd = ferry_transport::NodeDir::open(node_dir)?;
            nd.config.auto_approve = true;
            nd.save()?;
        }
        create_admin_token(node_dir)?;
        if args.serve {
            // Created before the node starts, so that the store is not shared with a server.
            passwords.push(add_demo_user(node_dir)?);
        }
        let log = std::fs::File::create(node_dir.join("node.log"))?;
        let child = Command::new(&exe)
            .arg("serve")
            .arg("--dir")
            .arg(node_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start `ferry serve`")?;
        nodes.children.push((party.to_string(), child));
        clients.push(ApiClient::for_node(node_dir, None, None)?);
    }
    for (client, (party, _)) in clients.iter().zip(&node_dirs) {
        client
            .wait_ready(Duration::from_secs(30))
            .with_context(|| format!("node '{party}' did not start"))?;
        println!(
            "   {:<8} serving its API at {}",
            party.as_str(),
            client.base()
        );
    }

    // 3. Each party registers its own data and grants it to the bank.
    println!("3. registering each party's data on its own node, granted to the bank");
    for (i, client) in clients.iter().enumerate() {
        // Uploaded, as `ferry dataset add NAME --file F` does: a node reads no path it was given.
        let file_name = format!("{}.csv", dataset_names[i]);
        let path = inputs.join(&file_name);
        let mut query = vec![
            ("description", "generated by ferry demo".to_string()),
            ("file_name", file_name),
        ];
        if i == 0 {
            query.push(("label", "y".to_string()));
            query.push(("label_kind", "binary".to_string()));
        }
        client.post_file(
            &format!("/api/v1/datasets/{}/upload", dataset_names[i]),
            &query,
            &path,
        )?;
        if i > 0 {
            client.post_json(
                &format!("/api/v1/datasets/{}/grants", dataset_names[i]),
                &json!({"party": "bank"}),
            )?;
        }
    }

    // 4. The bank submits the job.
    let hosts: Vec<&str> = names[1..].to_vec();
    let party_params: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n}: {{dataset: {}}}", dataset_names[i]))
        .collect();
    let job = match template {
        Some(t) => {
            let datasets: Vec<(&str, &str)> = names
                .iter()
                .zip(dataset_names)
                .map(|(n, d)| (*n, d))
                .collect();
            t.render(&ferry_node::templates::Fill {
                guest: "bank",
                hosts: &hosts,
                datasets: &datasets,
                scheme: &args.scheme,
            })?
        }
        None => default_job(&hosts, &party_params, &args.scheme),
    };
    let job_file = dir.join("job.yaml");
    std::fs::write(&job_file, &job)?;
    println!(
        "4. the bank submits {} ({})",
        job_file.display(),
        template
            .map(|t| t.description)
            .unwrap_or("PSI -> split -> SecureBoost and hetero LR -> predict -> evaluate")
    );
    let bank = &clients[0];
    let submitted = bank.post_text("/api/v1/jobs", &job)?;
    let job_id = submitted["job_id"]
        .as_str()
        .context("no job id")?
        .to_string();
    let status = wait_for_job(bank, &job_id, true)?;
    let view = bank.get(&format!("/api/v1/jobs/{job_id}"))?;
    if status != "succeeded" {
        print_status(&view);
        bail!(
            "the demo job {status}; node logs are in {}/nodes/<party>/node.log",
            dir.display()
        );
    }

    // 5. Results.
    let outputs = |task: &str| -> Value {
        view["tasks"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["task"] == task))
            .map(|t| t["outputs"].clone())
            .unwrap_or(Value::Null)
    };
    let psi = outputs("intersect");
    println!();
    let split = outputs("split");
    println!("5. results");
    if let Some(size) = psi["data"]["report"]["intersection_size"].as_u64() {
        println!(
            "   PSI intersection      {size} people common to all parties (no other id was revealed)"
        );
    }
    if let (Some(train), Some(test)) = (
        split["train"]["rows"].as_u64(),
        split["test"]["rows"].as_u64(),
    ) {
        println!(
            "   split by id           {train} to train on, {test} held out (every party splits alike, no message needed)"
        );
    }
    if template.is_some() {
        print_template_results(&view);
    } else {
        println!("   held-out scores:");
        for (label, task) in [("SecureBoost", "sb_eval"), ("hetero LR", "lr_eval")] {
            let r = &outputs(task)["metrics"]["headline"];
            println!(
                "     {label:<12} AUC {:.4}  KS {:.4}  accuracy {:.4}  F1 {:.4}",
                r["auc"].as_f64().unwrap_or(f64::NAN),
                r["ks"].as_f64().unwrap_or(f64::NAN),
                r["accuracy"].as_f64().unwrap_or(f64::NAN),
                r["f1"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    println!();
    println!("   models (each party stores and signs its own part):");
    // A model the bank holds, for the `ferry model show` line below.
    let mut shown_model: Option<String> = None;
    for (client, (party, _)) in clients.iter().zip(&node_dirs) {
        for m in client
            .get("/api/v1/models")?
            .as_array()
            .into_iter()
            .flatten()
        {
            if shown_model.is_none() {
                shown_model = m["name"].as_str().map(str::to_string);
            }
            println!(
                "     {:<8} {:<17} v{} {}",
                party.as_str(),
                m["name"].as_str().unwrap_or(""),
                m["version"],
                m["path"].as_str().unwrap_or("")
            );
        }
    }
    let bank_dir = &node_dirs[0].1;
    anonymous_query(
        &clients,
        &inputs.join(format!("{}.csv", dataset_names[1])),
        dataset_names[1],
    )?;
    println!();
    println!(
        "   finished in {:.1} s. Look around with the CLI:",
        start.elapsed().as_secs_f64()
    );
    if !args.keep && !args.serve {
        println!(
            "     ferry serve --dir {} &        (the demo stopped its nodes; start the bank's again)",
            bank_dir.display()
        );
    }
    println!(
        "     ferry job status {job_id} --dir {}",
        bank_dir.display()
    );
    println!("     ferry job logs {job_id} --dir {}", bank_dir.display());
    println!(
        "     ferry job audit {job_id} --dir {}     (every message that crossed the wire)",
        bank_dir.display()
    );
    println!("     ferry model list --dir {}", bank_dir.display());
    if let Some(model) = &shown_model {
        println!("     ferry model show {model} --dir {}", bank_dir.display());
    }
    println!("     ferry dataset list --dir {}", bank_dir.display());
    println!(
        "     ferry query list --dir {}     (the anonymous queries the bank ran)",
        bank_dir.display()
    );
    if !args.serve {
        println!(
            "   to look around in the web console, run the demo with --serve: the nodes stay up \
             and each node's console address and sign-in are printed"
        );
    }
    if args.keep {
        let pids: Vec<String> = nodes
            .children
            .iter()
            .map(|(_, c)| c.id().to_string())
            .collect();
        println!(
            "   the nodes keep running; stop them with: kill {}",
            pids.join(" ")
        );
    }
    if args.serve {
        serve_until_stopped(&clients, &node_dirs, &passwords)?;
    }
    drop(nodes);
    Ok(())
}

/// Lets the node's users hold several roles and creates [`DEMO_USER`] with every role and a
/// fresh password, which it returns (the node keeps only its hash).
fn add_demo_user(node_dir: &Path) -> anyhow::Result<String> {
    use rand::RngExt;
    // One person walks through the whole workflow on each node (upload, submit, approve,
    // audit), which separation of duties would otherwise split across users. The `[users]`
    // table is appended as text: ferry-cli does not parse TOML itself (NodeDir does).
    let config = node_dir.join("ferry.toml");
    let mut text = std::fs::read_to_string(&config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    if !text.contains("[users]") {
        text.push_str("\n[users]\nallow_multiple_roles = true\n");
        std::fs::write(&config, text)
            .with_context(|| format!("cannot write {}", config.display()))?;
    }
    let mut rng = rand::rng();
    let password: String = (0..PASSWORD_LEN)
        .map(|_| PASSWORD_ALPHABET[rng.random_range(0..PASSWORD_ALPHABET.len())] as char)
        .collect();
    let (_, store) = open_store(node_dir)?;
    let user = store.create_user(DEMO_USER, &ferry_store::UserRole::ALL, &password)?;
    record_cli_action(
        &store,
        "user.add",
        format!("user={}; roles=all (ferry demo --serve)", user.name),
    )?;
    Ok(password)
}

/// Prints each node's console address and sign-in, then waits for Ctrl-C or SIGTERM.
fn serve_until_stopped(
    clients: &[ApiClient],
    node_dirs: &[(ferry_context::PartyId, PathBuf)],
    passwords: &[String],
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The handlers are in place before the nodes are announced, so that a signal sent as soon
    // as the addresses appear stops the nodes instead of killing this process without them.
    #[cfg(unix)]
    let mut term = {
        let _guard = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?
    };
    println!();
    println!(
        "7. the web console: open a node's address in a browser and sign in (the passwords are \
         shown only now; each node keeps a hash)"
    );
    for ((client, (party, _)), password) in clients.iter().zip(node_dirs).zip(passwords) {
        println!(
            "     {:<8} {}/   user {DEMO_USER}   password {password}",
            party.as_str(),
            client.base()
        );
    }
    println!(
        "   the nodes keep running (logs in <node>/node.log); Ctrl-C stops them (or: kill {})",
        std::process::id()
    );
    runtime.block_on(async {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    });
    println!("stopping the nodes");
    Ok(())
}

/// Step 6: the telco publishes a query service over its data and the bank looks up two of the
/// telco's ids and one that does not exist; the telco records how many ids, never which.
fn anonymous_query(clients: &[ApiClient], telco_file: &Path, dataset: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(telco_file)
        .with_context(|| format!("cannot read {}", telco_file.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.take(3).map(|l| l.split(',').collect()).collect();
    let (Some(key), Some(values), [first, second, ..]) =
        (header.first(), header.get(1..3), rows.as_slice())
    else {
        bail!(
            "{}: too few columns or rows for the query demo",
            telco_file.display()
        );
    };
    let (telco, bank) = (&clients[1], &clients[0]);
    println!();
    println!(
        "6. anonymous query: the telco offers '{dataset}' ({}) as a query service; the bank asks for three ids",
        values.join(", ")
    );
    let published = telco.post_json(
        "/api/v1/query-services",
        &json!({"name": "telco-lookup", "dataset": dataset, "key_columns": [key],
                "value_columns": values, "wait": true}),
    )?;
    if published["status"] != "ready" {
        bail!(
            "the telco's query service was not built: {}",
            published["error"]
        );
    }
    let asked = [first[0], "nobody-42", second[0]];
    let result = bank.post_json(
        "/api/v1/queries",
        &json!({"provider": "telco", "service": "telco-lookup", "ids": asked}),
    )?;
    for answer in result["answers"].as_array().into_iter().flatten() {
        let id = answer["key"][0].as_str().unwrap_or("");
        if answer["found"] == true {
            let cells: Vec<String> = values
                .iter()
                .zip(answer["values"].as_array().into_iter().flatten())
                .map(|(name, v)| format!("{name}={}", v.as_str().unwrap_or("")))
                .collect();
            println!("   {key}={id:<10} found   {}", cells.join("  "));
        } else {
            println!("   {key}={id:<10} absent");
        }
    }
    let usage = telco.get("/api/v1/query-services/telco-lookup")?;
    let served = &usage["usage"][0];
    println!(
        "   the telco recorded: party '{}' asked {} ids in {} session(s) — not which ids, not whether they matched",
        served["partner"].as_str().unwrap_or("?"),
        served["ids"],
        served["sessions"]
    );
    Ok(())
}

/// The demo's own job: PSI -> split -> SecureBoost and hetero LR -> predict -> evaluation.
fn default_job(hosts: &[&str], party_params: &[String], scheme: &str) -> String {
    format!(
        r#"name: demo-credit-risk
parties: {{guest: bank, hosts: [{hosts}]}}
tasks:
  - name: read
    component: reader
    party_params: {{{party_params}}}
  - {{name: intersect, component: psi, inputs: {{data: read}}}}
  - {{name: split, component: data_split, inputs: {{data: intersect}}, params: {{test_fraction: 0.25}}}}
  - name: secureboost
    component: hetero_secureboost
    inputs: {{train: split.train}}
    params: {{num_trees: 5, max_depth: 3, learning_rate: 0.3, max_bin: 32, he: {{scheme: {scheme}}}, model_name: demo_secureboost}}
  - {{name: sb_predict, component: predict, inputs: {{model: secureboost, data: split.test}}}}
  - {{name: sb_eval, component: evaluation, inputs: {{data: sb_predict}}}}
  - name: lr
    component: hetero_lr
    inputs: {{train: split.train}}
    params: {{max_epochs: 8, batch_size: 1000, optimizer: {{method: adam, lr: 0.05}}, he: {{scheme: {scheme}}}, model_name: demo_lr}}
  - {{name: lr_predict, component: predict, inputs: {{model: lr, data: split.test}}}}
  - {{name: lr_eval, component: evaluation, inputs: {{data: lr_predict}}}}
"#,
        hosts = hosts.join(", "),
        party_params = party_params.join(", "),
        scheme = scheme
    )
}

/// Appends a text column `plan` (a telco's tariff, derived from the first feature) to a
/// generated CSV, so that the scorecard template meets a text column as real data has.
fn add_plan_column(file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)?;
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.lines().enumerate() {
        out.push_str(line);
        if i == 0 {
            out.push_str(",plan\n");
            continue;
        }
        let first: f64 = line
            .split(',')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(f64::NAN);
        let plan = if first.is_nan() {
            ""
        } else if first < -0.5 {
            "basic"
        } else if first < 0.5 {
            "plus"
        } else {
            "premium"
        };
        out.push(',');
        out.push_str(plan);
        out.push('\n');
    }
    std::fs::write(file, out)?;
    Ok(())
}

/// What a template's job produced: every evaluation's headline figures, the features with
/// the highest IV, and score stability.
fn print_template_results(view: &Value) {
    for t in view["tasks"].as_array().into_iter().flatten() {
        let out = &t["outputs"];
        let task = t["task"].as_str().unwrap_or_default();
        if let Some(h) = out["metrics"]["headline"].as_object() {
            let figures: Vec<String> = h
                .iter()
                .map(|(k, v)| format!("{} {:.4}", k.to_uppercase(), v.as_f64().unwrap_or(f64::NAN)))
                .collect();
            println!("   {task:<21} {}", figures.join("  "));
        }
        if let Some(features) = out["report"]["report"]["features"].as_array()
            && features.first().is_some_and(|f| f.get("iv").is_some())
        {
            let top: Vec<String> = features
                .iter()
                .take(5)
                .map(|f| {
                    format!(
                        "{} {:.3}",
                        f["feature"].as_str().unwrap_or_default(),
                        f["iv"].as_f64().unwrap_or(f64::NAN)
                    )
                })
                .collect();
            println!("   {task:<21} highest IV: {}", top.join(", "));
        }
        if let Some(columns) = out["report"]["report"]["columns"].as_array() {
            for c in columns {
                if let Some(psi) = c["psi"].as_f64() {
                    println!(
                        "   {task:<21} PSI of {} {:.4} ({})",
                        c["column"].as_str().unwrap_or_default(),
                        psi,
                        c["reading"].as_str().unwrap_or_default()
                    );
                }
            }
        }
    }
}
