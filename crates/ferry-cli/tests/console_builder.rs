//! The console's job builder in a real browser (issue 16): a YAML job opened in the builder
//! and saved again is the same job, for every shipped template and the demo's own job. Both
//! texts are parsed by the node's DSL parser and compared as job specs, so formatting may
//! differ but nothing the node would run differently.

mod common;

use common::browser::{Browser, WIDE};
use common::*;
use ferry_node::dsl::JobSpec;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

const USER: &str = "modeller";
const PASSWORD: &str = "builder-round-trip-2026";

/// The demo's job as `ferry demo` writes it (three nodes, a small population).
fn demo_job(root: &Path) -> String {
    let dir = root.join("demo");
    ok(ferry().args(["demo", "--rows", "300", "--dir"]).arg(&dir));
    std::fs::read_to_string(dir.join("job.yaml")).expect("the demo writes job.yaml")
}

/// Every shipped template, filled in for a guest and two hosts.
fn templates() -> Vec<(String, String)> {
    ferry_node::templates::TEMPLATES
        .iter()
        .map(|t| {
            let text = ok(ferry().args([
                "template",
                "show",
                t.name,
                "--guest",
                "bank=customers",
                "--host",
                "telco=usage",
                "--host",
                "insurer=claims",
            ]));
            (t.name.to_string(), text)
        })
        .collect()
}

/// A user allowed to submit jobs, created with `ferry user add` (password on stdin).
fn add_modeller(dir: &Path) {
    let mut child = ferry()
        .args(["user", "add", USER, "--role", "modeller", "--dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ferry user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn api_url(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("ferry.toml")).unwrap();
    let addr = text
        .lines()
        .find(|l| l.starts_with("api_listen"))
        .and_then(|l| l.split('"').nth(1))
        .expect("ferry.toml names the API address");
    format!("http://{addr}/")
}

/// Opens `yaml` in the builder (pasted into the Open dialog), saves it, returns the saved YAML.
fn open_and_save(b: &mut Browser, yaml: &str, first_task: &str) -> String {
    b.click("[data-testid=builder-open-toggle]");
    b.wait("[data-testid=builder-yaml-in]");
    // A paste: the whole text at once, through the textarea's own value setter so that
    // React sees the change (typing 2 KB key by key would only test the keyboard).
    b.exec(
        "const t = document.querySelector('[data-testid=builder-yaml-in]'); \
         Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set.call(t, arguments[0]); \
         t.dispatchEvent(new Event('input', {bubbles: true}));",
        vec![json!(yaml)],
    );
    // The button waits for the component list, which the conversion needs.
    b.click("[data-testid=builder-open]:not([disabled])");
    b.wait(&format!("[data-testid=node-{first_task}]"));
    b.click("[data-testid=builder-save]");
    b.wait("[data-testid=builder-yaml-out]");
    b.exec(
        "return document.querySelector('[data-testid=builder-yaml-out]').value",
        vec![],
    )
    .as_str()
    .expect("the saved YAML is text")
    .to_string()
}

#[test]
fn a_job_opened_in_the_builder_and_saved_again_is_the_same_job() {
    let root = tempfile::tempdir().unwrap();
    let mut jobs = templates();
    assert!(jobs.len() >= 2, "the templates: {jobs:?}");
    jobs.push(("demo".to_string(), demo_job(root.path())));

    let dir = init_node(root.path(), "bank", false);
    add_modeller(&dir);
    let _served = serve(&dir);
    wait_api(&dir);

    let mut b = Browser::start("console_builder_round_trip", WIDE);
    // Before signing in, the console asks who is signed in and is told nobody (401).
    b.allow_console_error("/api/v1/session - Failed to load resource");
    b.sign_in(&api_url(&dir), USER, PASSWORD);
    b.nav("builder");
    b.wait("[data-testid=palette-hetero_secureboost]");
    for (name, yaml) in &jobs {
        let original = JobSpec::parse(yaml).unwrap_or_else(|e| panic!("{name}: {e}\n{yaml}"));
        let first = &original.tasks[0].name;
        let saved = open_and_save(&mut b, yaml, first);
        b.screenshot(&format!("round-trip-{name}"));
        let again = JobSpec::parse(&saved)
            .unwrap_or_else(|e| panic!("{name}: the saved YAML does not parse: {e}\n{saved}"));
        assert_eq!(
            again, original,
            "{name}: the builder changed the job\n--- opened:\n{yaml}\n--- saved:\n{saved}"
        );
        // Every task is on the canvas, each input drawn as a connection.
        for t in &original.tasks {
            assert_eq!(
                b.find_all(&format!("[data-testid=node-{}]", t.name)).len(),
                1,
                "{name}: task {} is not drawn once",
                t.name
            );
        }
        let inputs: usize = original.tasks.iter().map(|t| t.inputs.len()).sum();
        assert_eq!(
            b.find_all(".react-flow__edge").len(),
            inputs,
            "{name}: every input is one connection"
        );
    }
    b.finish();
}

/// Dragging from the palette and between ports builds the job's inputs; a connection of the
/// wrong kind is refused with the reason; the node's validation marks the parameter, its task
/// and the list as the user types, and clears when the value is fixed.
#[test]
fn the_builder_refuses_wrong_connections_and_shows_validation_in_place() {
    let root = tempfile::tempdir().unwrap();
    let dir = init_node(root.path(), "bank", false);
    add_modeller(&dir);
    let _served = serve(&dir);
    wait_api(&dir);

    let mut b = Browser::start("console_builder_in_place", WIDE);
    b.allow_console_error("/api/v1/session - Failed to load resource");
    b.sign_in(&api_url(&dir), USER, PASSWORD);
    b.nav("builder");
    let canvas = "[data-testid=builder-canvas]";
    b.drag_to("[data-testid=palette-reader]", canvas, (80.0, 120.0));
    b.drag_to("[data-testid=palette-psi]", canvas, (330.0, 120.0));
    b.drag_to(
        "[data-testid=palette-hetero_secureboost]",
        canvas,
        (580.0, 120.0),
    );
    for task in ["reader", "psi", "hetero_secureboost"] {
        b.wait(&format!("[data-testid=node-{task}]"));
    }
    b.drag(
        "[data-testid=node-reader] .source[data-handleid=data]",
        "[data-testid=node-psi] .target[data-handleid=data]",
    );
    b.drag(
        "[data-testid=node-psi] .source[data-handleid=data]",
        "[data-testid=node-hetero_secureboost] .target[data-handleid=train]",
    );
    // A model into a dataset input is refused, and nothing is connected.
    b.drag(
        "[data-testid=node-hetero_secureboost] .source[data-handleid=model]",
        "[data-testid=node-psi] .target[data-handleid=data]",
    );
    let refusal = b.wait_text("[data-testid=builder-message]", "model");
    assert!(refusal.contains("'data'"), "{refusal}");
    b.screenshot("refused-connection");

    b.click("[data-testid=builder-save]");
    let yaml = b
        .exec(
            "return document.querySelector('[data-testid=builder-yaml-out]').value",
            vec![],
        )
        .as_str()
        .unwrap_or_default()
        .to_string();
    let spec = JobSpec::parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let inputs = |task: &str| {
        spec.task(task)
            .map(|t| t.inputs.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        inputs("psi").get("data").map(String::as_str),
        Some("reader")
    );
    assert_eq!(
        inputs("hetero_secureboost")
            .get("train")
            .map(String::as_str),
        Some("psi")
    );
    assert_eq!(spec.parties.guest, "bank", "this node is the guest");

    // A parameter out of range is marked on its field, its task and in the list.
    b.click("[data-testid=node-hetero_secureboost]");
    b.fill("[data-testid=param-max_depth]", "99");
    let field = "[data-testid=builder-validate-errors] li[data-field='tasks.hetero_secureboost.params.max_depth']";
    let listed = b.wait_text(field, "max_depth");
    assert!(listed.contains("99"), "{listed}");
    b.wait(".param.has-error [data-testid=param-max_depth]");
    b.wait("[data-testid=node-errors-hetero_secureboost]");
    b.screenshot("parameter-error");
    b.fill("[data-testid=param-max_depth]", "4");
    b.wait_gone(field);
    b.finish();
}
