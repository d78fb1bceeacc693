//! The web console in a real browser (issue 16): headless Chromium driven over WebDriver
//! against `ferry serve` processes. Screenshots of every page land in
//! `target/console-screenshots/<test>/`; a test fails on any error the browser logged.

mod common;

use common::browser::{Browser, NARROW, WIDE};
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
    let refusal = b.wait_text("[role=alert]", "");
    assert!(!refusal.trim().is_empty(), "the refusal shows no message");
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
