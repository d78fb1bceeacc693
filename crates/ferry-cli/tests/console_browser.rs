//! The web console in a real browser (issue 16): headless Chromium driven over WebDriver
//! against `ferry serve` processes. Screenshots of every page land in
//! `target/console-screenshots/<test>/`; a test fails on any error the browser logged.

mod common;

use common::browser::{Browser, NARROW, WAIT, WIDE};
use common::*;
use ferry_data::synthetic::{VerticalSpec, vertical};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Every role, so that one person can go through the whole workflow on a node.
const ALL_ROLES: &str = "admin,data_steward,modeller,approver,auditor";

/// A served node with a console user.
struct ConsoleNode {
    dir: PathBuf,
    _served: Served,
    /// `http://127.0.0.1:<api port>/`
    url: String,
    user: String,
    password: String,
}

/// The API address a node directory's ferry.toml listens on.
fn api_addr(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("ferry.toml")).unwrap();
    text.lines()
        .find(|l| l.starts_with("api_listen"))
        .and_then(|l| l.split('"').nth(1))
        .unwrap()
        .to_string()
}

/// `ferry user add NAME --role ROLES` with the password on standard input.
fn add_user(dir: &Path, name: &str, roles: &str, password: &str) {
    let mut child = ferry()
        .args(["user", "add", name, "--role", roles, "--dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ferry user add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lets one user hold every role and adds `<party>-admin` with them; the user and password.
fn add_console_user(dir: &Path) -> (String, String) {
    let mut toml = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("ferry.toml"))
        .unwrap();
    writeln!(toml, "\n[users]\nallow_multiple_roles = true").unwrap();
    let party = dir.file_name().unwrap().to_string_lossy().into_owned();
    let user = format!("{party}-admin");
    let password = format!("{party}-console-pass-2026");
    add_user(dir, &user, ALL_ROLES, &password);
    (user, password)
}

/// A node with a console user, served.
fn console_node(dir: PathBuf) -> ConsoleNode {
    let (user, password) = add_console_user(&dir);
    let served = serve(&dir);
    wait_api(&dir);
    ConsoleNode {
        url: format!("http://{}/", api_addr(&dir)),
        dir,
        _served: served,
        user,
        password,
    }
}

#[test]
fn sign_in_refuses_a_wrong_password_then_lets_the_user_in() {
    let root = tempfile::tempdir().unwrap();
    let node = console_node(init_node(root.path(), "bank", false));
    let mut b = Browser::start("sign_in", WIDE);
    // The "am I signed in" probe and the refused attempt are 401s from the API, which
    // Chromium logs as failed resources.
    b.allow_console_error(
        "/api/v1/session - Failed to load resource: the server responded with a status of 401",
    );
    b.goto(&node.url);
    b.wait("input[name=name]");
    b.screenshot("signin");
    b.fill("input[name=name]", &node.user);
    b.fill("input[name=password]", "not-the-password-at-all");
    b.click("form button[type=submit]");
    let refusal = b.wait_until("the refusal's message", WAIT, |b| {
        b.find_all("[role=alert]")
            .iter()
            .map(|e| b.text_of(e))
            .find(|t| !t.trim().is_empty())
    });
    assert!(
        refusal.contains("password"),
        "the refusal does not say what was wrong: {refusal}"
    );
    b.screenshot("signin-refused");
    assert!(
        b.find_all("a[data-nav=overview]").is_empty(),
        "a wrong password let the user in"
    );
    b.fill("input[name=password]", &node.password);
    b.click("form button[type=submit]");
    b.wait("a[data-nav=overview]");
    let me = b.wait_text("header", &node.user);
    assert!(me.contains(&node.user), "{me}");
    b.screenshot("signed-in");
    b.finish();
}

/// A small CSV with an id, two features and a binary label.
fn write_small_csv(path: &Path) {
    let mut text = String::from("id,age,income,y\n");
    for i in 0..40 {
        text += &format!("c{i},{},{}.5,{}\n", 20 + i, 1000 + 37 * i, i % 2);
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn upload_a_dataset_and_see_its_schema() {
    let root = tempfile::tempdir().unwrap();
    let node = console_node(init_node(root.path(), "bank", false));
    let file = root.path().join("customers.csv");
    write_small_csv(&file);
    let mut b = Browser::start("upload", WIDE);
    b.sign_in(&node.url, &node.user, &node.password);
    b.nav("datasets");
    b.wait("[data-testid=page-datasets]");
    b.choose_file("[data-testid=upload-file]", &file);
    b.fill("[data-testid=upload-name]", "customers");
    b.fill("[data-testid=upload-label]", "y");
    b.click("[data-testid=upload-submit]");
    b.wait_text("[data-testid=upload-done]", "customers");
    b.screenshot("uploaded");
    // The list shows it with its rows; its page shows the schema and statistics.
    let row = b.wait_text("[data-testid=dataset-row-customers]", "40");
    assert!(row.contains("customers"), "{row}");
    b.click("[data-testid=dataset-row-customers] a");
    b.wait("[data-testid=page-dataset]");
    let stats = b.wait_text("[data-testid=dataset-stats]", "income");
    for column in ["age", "income", "y"] {
        assert!(stats.contains(column), "no column {column} in: {stats}");
    }
    b.screenshot("dataset");
    // The node has it as uploaded: 40 rows, label y.
    let shown = ok(ferry()
        .args(["dataset", "show", "customers", "--dir"])
        .arg(&node.dir));
    assert!(shown.contains("40"), "{shown}");
    b.finish();
}

#[test]
fn the_language_switch_shows_every_label_in_chinese_and_back() {
    let root = tempfile::tempdir().unwrap();
    let node = console_node(init_node(root.path(), "bank", false));
    let mut b = Browser::start("language", WIDE);
    b.sign_in(&node.url, &node.user, &node.password);
    let english = b.text("a[data-nav=datasets]");
    assert_eq!(english, "Datasets");
    b.click("[data-testid=lang-switch]");
    let chinese = b.wait_until("the navigation in Chinese", Duration::from_secs(5), |b| {
        let t = b.text("a[data-nav=datasets]");
        (t != english).then_some(t)
    });
    assert!(
        chinese
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "the datasets link reads {chinese:?} in Chinese"
    );
    assert_eq!(
        b.exec("return document.documentElement.lang", vec![]),
        "zh-CN"
    );
    // Every page in Chinese: no dictionary key shown in place of a label.
    for page in NAV {
        b.nav(page);
        b.wait(&format!(
            "[data-testid=page-{page}], [data-testid=job-builder]"
        ));
        b.wait_gone(".loading");
        let nav = b.text(&format!("a[data-nav={page}]"));
        assert!(
            !nav.starts_with("nav."),
            "page {page}: the navigation shows the key {nav}"
        );
        let text = b.body_text();
        let keys: Vec<&str> = text
            .split_whitespace()
            .filter(|w| looks_like_key(w))
            .collect();
        assert!(
            keys.is_empty(),
            "page {page} in Chinese shows keys: {keys:?}"
        );
        b.screenshot(&format!("zh-{page}"));
    }
    // The choice is kept across a reload, and switching back restores English.
    b.goto(&node.url);
    let kept = b.text("a[data-nav=datasets]");
    assert_eq!(kept, chinese);
    b.click("[data-testid=lang-switch]");
    b.wait_text("a[data-nav=datasets]", "Datasets");
    b.finish();
}

/// Whether a word of the page is a dictionary key such as `datasets.upload` (what the console
/// shows for a label missing from a language): lowercase words joined by dots.
fn looks_like_key(word: &str) -> bool {
    const PREFIXES: [&str; 14] = [
        "nav.",
        "app.",
        "signin.",
        "datasets.",
        "jobs.",
        "job.",
        "approvals.",
        "models.",
        "services.",
        "psi.",
        "queries.",
        "overview.",
        "eval.",
        "b.",
    ];
    PREFIXES.iter().any(|p| word.starts_with(p))
        && word.len() > 3
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
}

/// The navigation's pages.
const NAV: [&str; 9] = [
    "overview",
    "datasets",
    "jobs",
    "builder",
    "approvals",
    "models",
    "services",
    "psi",
    "queries",
];

/// The harness itself: a script error and a console.error are caught, so that the other
/// tests' "no console errors" means something.
#[test]
fn the_harness_catches_the_browsers_console_errors() {
    let mut b = Browser::start("harness", NARROW);
    b.goto(
        "data:text/html,<p id=p>wide</p><script>console.error('boom-1');\
         document.getElementById('p').style.width='900px';undefinedFunction()</script>",
    );
    b.wait("#p");
    let errors = b.console_errors();
    assert!(
        errors.iter().any(|e| e.contains("boom-1")),
        "console.error missed: {errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("undefinedFunction")),
        "the script error missed: {errors:?}"
    );
    // The overflow check sees a paragraph wider than the 400-pixel window.
    assert_eq!(b.overflow().map(|(_, inner)| inner), Some(400));
    b.clear_console_errors();
    b.finish();
}

/// Three nodes as in the demo, each with a console user: the bank (guest), the telco (a host
/// whose approver approves partners' jobs in person) and the insurer (a host that approves
/// partners' jobs which pass its checks by itself). The bank and the insurer register their
/// generated data with the CLI (the insurer grants its to the bank); the telco's file is left
/// for the test to upload in the telco's console.
struct ThreeNodes {
    bank: ConsoleNode,
    telco: ConsoleNode,
    insurer: ConsoleNode,
    telco_file: PathBuf,
}

const DATASETS: [(&str, &str); 3] = [
    ("bank", "bank_customers"),
    ("telco", "telco_usage"),
    ("insurer", "insurer_claims"),
];

fn three_nodes(root: &Path) -> ThreeNodes {
    let dirs: Vec<PathBuf> = DATASETS
        .iter()
        .map(|(party, _)| init_node(root, party, *party == "insurer"))
        .collect();
    for (i, me) in dirs.iter().enumerate() {
        for (j, peer) in dirs.iter().enumerate() {
            if i != j {
                ok(ferry()
                    .args(["peer", "add", DATASETS[j].0, "--addr", &fed_addr(peer)])
                    .arg("--cert")
                    .arg(peer.join("identity/cert.pem"))
                    .arg("--dir")
                    .arg(me));
            }
        }
    }
    // A few hundred people keep SecureBoost under HE to seconds.
    let parts = vertical(&VerticalSpec {
        rows: 300,
        features: vec![4, 4, 3],
        coverage: 0.9,
        missing: 0.0,
        seed: 16,
    });
    let mut nodes: Vec<ConsoleNode> = dirs.into_iter().map(console_node).collect();
    for ((node, part), (_, dataset)) in nodes.iter().zip(&parts).zip(DATASETS) {
        let file = root.join(format!("{dataset}.csv"));
        part.write_csv(&file).unwrap();
        if dataset == "telco_usage" {
            continue;
        }
        let mut add = ferry();
        add.args(["dataset", "add", dataset, "--file"]).arg(&file);
        if dataset == "bank_customers" {
            add.args(["--label", "y"]);
        }
        ok(add.arg("--dir").arg(&node.dir));
        if dataset != "bank_customers" {
            ok(ferry()
                .args(["dataset", "grant", dataset, "--party", "bank", "--dir"])
                .arg(&node.dir));
        }
    }
    let insurer = nodes.pop().unwrap();
    let telco = nodes.pop().unwrap();
    let bank = nodes.pop().unwrap();
    ThreeNodes {
        bank,
        telco,
        insurer,
        telco_file: root.join("telco_usage.csv"),
    }
}

/// Builds PSI → SecureBoost → predict → evaluation on the bank's builder by dragging
/// components from the palette and connecting their ports; fills in the parties, datasets and
/// parameters; submits; answers the job's id.
fn build_and_submit(b: &mut Browser) -> String {
    b.nav("builder");
    b.wait("[data-testid=builder-canvas]");
    b.screenshot("builder-empty");
    let canvas = b.exec(
        "const r = document.querySelector('[data-testid=builder-canvas]').getBoundingClientRect(); \
         return [r.width, r.height];",
        vec![],
    );
    let (w, h) = (
        canvas[0].as_f64().unwrap_or(0.0),
        canvas[1].as_f64().unwrap_or(0.0),
    );
    assert!(w > 300.0 && h > 300.0, "the canvas is {w}x{h}");
    // Two columns, top to bottom in the order the job runs.
    let places = [
        ("reader", (0.3, 0.12)),
        ("psi", (0.3, 0.36)),
        ("hetero_secureboost", (0.3, 0.62)),
        ("predict", (0.72, 0.45)),
        ("evaluation", (0.72, 0.75)),
    ];
    for (component, (fx, fy)) in places {
        b.drag_to(
            &format!("[data-testid=palette-{component}]"),
            "[data-testid=builder-canvas]",
            (w * fx, h * fy),
        );
        b.wait(&format!("[data-testid=node-{component}]"));
    }
    b.screenshot("builder-placed");
    let port = |task: &str, dir: &str, port: &str| {
        format!("[data-testid=node-{task}] [data-testid={dir}-{port}]")
    };
    let links = [
        (("reader", "data"), ("psi", "data")),
        (("psi", "data"), ("hetero_secureboost", "train")),
        (("hetero_secureboost", "model"), ("predict", "model")),
        (("psi", "data"), ("predict", "data")),
        (("predict", "data"), ("evaluation", "data")),
    ];
    for ((from, out), (to, input)) in links {
        let before = b.find_all(".react-flow__edge").len();
        b.drag(&port(from, "out", out), &port(to, "in", input));
        b.wait_until(
            &format!("an edge from {from}.{out} to {to}.{input}"),
            Duration::from_secs(5),
            |b| (b.find_all(".react-flow__edge").len() > before).then_some(()),
        );
    }
    b.screenshot("builder-connected");
    // Parties: the bank guides, the telco and the insurer are hosts.
    b.fill("[data-testid=builder-job-name]", "console-credit-risk");
    b.select("[data-testid=party-guest]", "bank");
    if b.find_all("[data-testid=party-host-0]").is_empty() {
        b.click("[data-testid=party-add-host]");
    }
    b.select("[data-testid=party-host-0]", "telco");
    if b.find_all("[data-testid=party-host-1]").is_empty() {
        b.click("[data-testid=party-add-host]");
    }
    b.select("[data-testid=party-host-1]", "insurer");
    b.select("[data-testid=dataset-reader-bank]", "bank_customers");
    b.fill("[data-testid=dataset-reader-telco]", "telco_usage");
    b.fill("[data-testid=dataset-reader-insurer]", "insurer_claims");
    // SecureBoost's parameters: a few small trees under Okamoto–Uchiyama.
    b.click("[data-testid=node-hetero_secureboost]");
    b.fill("[data-testid=param-num_trees]", "3");
    b.fill("[data-testid=param-max_depth]", "3");
    b.select("[data-testid=\"param-he.scheme\"]", "\"okamoto_uchiyama\"");
    b.wait_until("the node to find the job valid", WAIT, |b| {
        let v = b.exec(
            "const e = document.querySelector('[data-testid=builder-validate-errors]'); \
                 return e ? [e.dataset.valid, e.innerText] : null;",
            vec![],
        );
        (v[0] == "true").then_some(())
    });
    b.screenshot("builder-valid");
    b.click("[data-testid=builder-submit]");
    b.wait("[data-testid=page-job]");
    let url = b.url();
    url.rsplit('/')
        .next()
        .filter(|id| id.starts_with("job-"))
        .unwrap_or_else(|| panic!("not a job's page after submitting: {url}"))
        .to_string()
}

#[test]
fn three_nodes_build_submit_approve_and_watch_a_job_in_the_console() {
    let root = tempfile::tempdir().unwrap();
    let nodes = three_nodes(root.path());
    // The telco's data steward uploads its data and grants it to the bank in its console.
    let mut telco = Browser::start("three_nodes_telco", WIDE);
    telco.sign_in(&nodes.telco.url, &nodes.telco.user, &nodes.telco.password);
    telco.nav("datasets");
    telco.choose_file("[data-testid=upload-file]", &nodes.telco_file);
    telco.fill("[data-testid=upload-name]", "telco_usage");
    telco.click("[data-testid=upload-submit]");
    telco.wait_text("[data-testid=upload-done]", "telco_usage");
    telco.goto(&format!("{}#/datasets/telco_usage", nodes.telco.url));
    telco.wait("[data-testid=page-dataset]");
    telco.select("[data-testid=grant-party]", "bank");
    telco.click("[data-testid=grant-submit]");
    telco.wait("[data-testid=grant-bank]");
    telco.screenshot("granted");

    let mut bank = Browser::start("three_nodes_bank", WIDE);
    bank.sign_in(&nodes.bank.url, &nodes.bank.user, &nodes.bank.password);
    let job = build_and_submit(&mut bank);

    // The telco's approver sees the proposal with its security settings and approves it.
    telco.nav("approvals");
    let card = format!("[data-testid=approval-{job}]");
    let settings = telco.wait_text(&format!("{card} [data-testid=security-settings]"), "");
    for shown in ["ou-2048", "telco_usage"] {
        assert!(
            settings.contains(shown),
            "the approval does not show {shown}: {settings}"
        );
    }
    telco.screenshot("approvals");
    // Meanwhile the bank's job page says it waits.
    let waiting = bank.wait_until("the job to wait for approval", WAIT_JOB, |b| {
        let s = job_status(b);
        (s == "pending_approval" || s == "running" || s == "succeeded").then_some(s)
    });
    assert_eq!(
        waiting, "pending_approval",
        "the job ran before the telco approved"
    );
    bank.screenshot("job-waiting");
    telco.click(&format!("[data-testid=approve-{job}]"));
    telco.wait_gone(&card);
    telco.screenshot("approved");

    // The bank's page follows the job live to its end.
    let status = bank.wait_until("the job to end", WAIT_JOB, |b| {
        let s = job_status(b);
        matches!(s.as_str(), "succeeded" | "failed" | "cancelled").then_some(s)
    });
    if status != "succeeded" {
        bank.fail(&format!("the job {status}"));
    }
    for task in [
        "reader",
        "psi",
        "hetero_secureboost",
        "predict",
        "evaluation",
    ] {
        bank.wait(&format!(
            "[data-testid=task-node-{task}][data-status=succeeded]"
        ));
    }
    bank.screenshot("job-succeeded");
    // The evaluation's ROC curve is drawn.
    let roc = bank.wait("[data-testid=eval-evaluation] [data-testid=roc-plot] canvas");
    // Drawn, not an empty box: the canvas has pixels that are not the background.
    let inked = bank.exec(
        "const c = arguments[0]; c.scrollIntoView({block: 'center'}); \
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
         let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;",
        vec![roc.json()],
    );
    assert!(
        inked.as_u64().unwrap_or(0) > 100,
        "the ROC plot's canvas is blank ({inked} pixels drawn)"
    );
    let auc = bank.text("[data-testid=eval-evaluation] [data-testid=headline-auc]");
    let auc: f64 = auc.trim().parse().unwrap_or_else(|_| panic!("AUC {auc:?}"));
    assert!(auc > 0.6, "AUC {auc}");
    bank.screenshot("roc");
    // The other pages show the job's results: its row, its intersection, its signed model.
    bank.nav("jobs");
    bank.wait(&format!(
        "[data-testid=job-row-{job}] [data-status=succeeded]"
    ));
    bank.nav("psi");
    let size = bank.text(&format!(
        "[data-testid=psi-row-{job}-psi] [data-testid=psi-intersection]"
    ));
    let size: usize = size
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("intersection {size:?}"));
    assert!((100..300).contains(&size), "intersection of {size} rows");
    bank.nav("models");
    bank.wait("[data-testid^=model-row-]");

    // Every page, wide and narrow: nothing wider than the window, a screenshot of each.
    let pages = every_page(&job);
    for (size, label) in [(WIDE, "wide"), (NARROW, "narrow")] {
        bank.set_window(size);
        for (name, route) in &pages {
            bank.goto(&format!("{}#/{route}", nodes.bank.url));
            bank.wait(&format!(
                "[data-testid=page-{name}], [data-testid=job-builder]"
            ));
            bank.wait_until("the page to load", WAIT_JOB, |b| {
                (!b.body_text().contains("Loading")).then_some(())
            });
            if let Some((scroll, inner)) = bank.overflow() {
                bank.fail(&format!(
                    "page {name} at {label} width is {scroll} px wide in a {inner} px window"
                ));
            }
            bank.screenshot(&format!("{label}-{name}"));
        }
    }
    telco.nav("jobs");
    telco.wait(&format!("[data-testid=job-row-{job}]"));
    // The insurer approved by itself and ran its part.
    wait_output(&nodes.insurer.dir, &["job", "status", &job], "succeeded");
    telco.finish();
    bank.finish();
}

/// How long a job or a page may take here.
const WAIT_JOB: Duration = Duration::from_secs(120);

fn job_status(b: &mut Browser) -> String {
    let v = b.exec(
        "const e = document.querySelector('[data-testid=job-status]'); \
         return e ? e.dataset.status : '';",
        vec![],
    );
    v.as_str().unwrap_or_default().to_string()
}

/// (test id suffix of the page, route) of every page, with the job's and a dataset's.
fn every_page(job: &str) -> Vec<(String, String)> {
    let mut pages: Vec<(String, String)> =
        NAV.iter().map(|p| (p.to_string(), p.to_string())).collect();
    pages.push(("job".into(), format!("jobs/{job}")));
    pages.push(("dataset".into(), "datasets/bank_customers".into()));
    pages
}
