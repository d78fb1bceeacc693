//! Node directories for the integration tests: each node with its own identity, pinned to
//! the others, as `ferry init` and `ferry peer add` would leave them.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use ferry_context::PartyId;
use ferry_data::Dataset;
use ferry_data::synthetic::{VerticalSpec, vertical};
use ferry_node::Node;
use ferry_store::{GrantTarget, JobRow, LabelKind, RegisterDataset};
use ferry_transport::NodeDir;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

pub fn free_port() -> u16 {
    ferry_transport::unused_loopback_port().unwrap()
}

/// Initialises one node directory per name under `root` (federation and API on free loopback
/// ports), with `policy` as its `[policy]` table if given, and pins every node to every other.
pub fn pinned_node_dirs(
    root: &Path,
    names: &[&str],
    auto_approve: bool,
    policy: Option<&toml::Table>,
) -> Vec<PathBuf> {
    let mut dirs: Vec<NodeDir> = names
        .iter()
        .map(|n| {
            let fed = format!("127.0.0.1:{}", free_port());
            let api = format!("127.0.0.1:{}", free_port());
            let mut d =
                NodeDir::init(root.join(n), &PartyId::new(*n).unwrap(), &fed, &api).unwrap();
            d.config.auto_approve = auto_approve;
            if let Some(p) = policy {
                d.config.other.insert("policy".into(), p.clone().into());
            }
            d.save().unwrap();
            d
        })
        .collect();
    let info: Vec<(PartyId, String, PathBuf)> = dirs
        .iter()
        .map(|d| {
            (
                d.party(),
                d.config.federation_listen.clone(),
                d.root().join(&d.config.cert_file),
            )
        })
        .collect();
    for d in dirs.iter_mut() {
        for (p, addr, cert) in &info {
            if *p != d.party() {
                d.add_peer(p, addr, cert).unwrap();
            }
        }
    }
    dirs.iter().map(|d| d.root().to_path_buf()).collect()
}

/// The `[policy]` that lets test nodes use 1024-bit keys (fast, for tests only).
pub fn test_policy() -> toml::Table {
    toml::from_str("min_paillier_bits = 1024\nmin_ou_bits = 1024\n").unwrap()
}

/// Each party's part of a seeded synthetic vertical table with no missing values.
pub fn vertical_parts(rows: usize, features: &[usize], coverage: f64, seed: u64) -> Vec<Dataset> {
    vertical(&VerticalSpec {
        rows,
        features: features.to_vec(),
        coverage,
        missing: 0.0,
        seed,
    })
}

/// Each party's part of a small synthetic vertical table (3 and 4 features, seed 11) registered
/// on its node as `mydata`, the guest's with its binary label.
pub fn register_data(c: &Cluster, rows: usize) {
    c.register_parts(
        "mydata",
        &vertical_parts(rows, &[3, 4], 0.9, 11),
        LabelKind::Binary,
    );
}

/// Started nodes, each in its own directory (the first is the guest).
pub struct Cluster {
    /// Holds the node directories; they go when the cluster does.
    pub tmp: tempfile::TempDir,
    pub nodes: Vec<Arc<Node>>,
    pub dirs: Vec<PathBuf>,
}

impl Cluster {
    /// Starts a node in each of `dirs` (which live in `tmp`).
    pub fn start(tmp: tempfile::TempDir, dirs: Vec<PathBuf>) -> Cluster {
        let nodes = dirs
            .iter()
            .map(|d| Node::start(NodeDir::open(d).unwrap()).unwrap())
            .collect();
        Cluster { tmp, nodes, dirs }
    }

    /// Nodes `names` (the first is the guest) in a new temporary directory, pinned to each
    /// other, with `policy` as their `[policy]` table if given, started.
    pub fn pinned(names: &[&str], auto_approve: bool, policy: Option<&toml::Table>) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = pinned_node_dirs(tmp.path(), names, auto_approve, policy);
        Cluster::start(tmp, dirs)
    }

    /// A horizontal split of `all` as dataset `name` on the first two nodes (node `i` holds the
    /// rows `r` with `r % 2 == i`, labels included); the second grants it to the first.
    pub fn register_halves(&self, name: &str, all: &Dataset) {
        for (i, node) in self.nodes[..2].iter().enumerate() {
            let rows: Vec<usize> = (0..all.n_rows()).filter(|r| r % 2 == i).collect();
            let file = self.dirs[i].join(format!("{name}.csv"));
            all.select_rows(&rows).write_csv(&file).unwrap();
            let mut req = RegisterDataset::new(name, &file);
            req.label = Some("y".into());
            req.label_kind = LabelKind::Binary;
            node.store().register_dataset(req).unwrap();
        }
        let guest = self.nodes[0].party().as_str().to_string();
        self.nodes[1]
            .store()
            .grant(name, GrantTarget::Party(guest))
            .unwrap();
    }

    /// Registers `parts[i]` on node `i` as dataset `name`, written as CSV to `<name>.csv` in
    /// that node's directory; the guest's part with its label `y` of kind `label_kind`.
    pub fn register_parts(&self, name: &str, parts: &[Dataset], label_kind: LabelKind) {
        self.register_parts_with(name, parts, label_kind, |_, part, file| {
            part.write_csv(file).unwrap()
        });
    }

    /// [`Cluster::register_parts`] with `write(i, part, file)` writing each file.
    pub fn register_parts_with(
        &self,
        name: &str,
        parts: &[Dataset],
        label_kind: LabelKind,
        write: impl Fn(usize, &Dataset, &Path),
    ) {
        for (i, (node, part)) in self.nodes.iter().zip(parts).enumerate() {
            let file = self.dirs[i].join(format!("{name}.csv"));
            write(i, part, &file);
            let mut req = RegisterDataset::new(name, &file);
            if i == 0 {
                req.label = Some("y".into());
                req.label_kind = label_kind;
            }
            node.store().register_dataset(req).unwrap();
        }
    }
}

// ------------------------------------------------------------------------------------------
// Waiting.

/// Waits until `f` answers something (at most `timeout`) and returns it.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `node` shows `job` in a final state (at most `timeout`) and returns its row.
pub fn wait_done(node: &Node, job: &str, timeout: Duration) -> JobRow {
    let start = Instant::now();
    loop {
        let status = match node.store().job(job) {
            Ok(row) if row.status.is_terminal() => return row,
            Ok(row) => row.status.as_str().to_string(),
            Err(_) => "unknown".to_string(),
        };
        assert!(
            start.elapsed() < timeout,
            "job {job} still {status} on {} after {timeout:?}",
            node.party()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`wait_done`], asserting that the job succeeded.
pub fn wait_succeeded(node: &Node, job: &str, timeout: Duration) {
    let row = wait_done(node, job, timeout);
    assert_eq!(row.status.as_str(), "succeeded", "{:?}", row.reason);
}

// ------------------------------------------------------------------------------------------
// The REST API, through the router (no listening socket).

/// What the router answered.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as it came.
    pub bytes: Vec<u8>,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    pub set_cookie: Option<String>,
}

/// A request for `method` `uri` with `headers`, and `body` as JSON if given.
pub fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, String)],
    body: Option<Value>,
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    match body {
        Some(b) => req
            .header("Content-Type", "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    }
}

/// Sends `req` through `router` on a current-thread runtime.
pub fn oneshot(router: &axum::Router, req: Request<Body>) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let set_cookie = headers
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string());
        // An event stream (GET /api/v1/events) never ends: its body is not read here.
        let streaming = headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let bytes = if streaming {
            Vec::new()
        } else {
            axum::body::to_bytes(resp.into_body(), 1 << 26)
                .await
                .unwrap()
                .to_vec()
        };
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            bytes,
            set_cookie,
        }
    })
}

/// One request through the router: `method` `uri` with `headers`, and `body` as JSON if given.
pub fn send(
    router: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, String)],
    body: Option<Value>,
) -> Answer {
    oneshot(router, request(method, uri, headers, body))
}

/// The `Authorization` header of a bearer token.
pub fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {token}"))]
}

/// [`send`] with a bearer token if given; the status and the body as JSON.
pub fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let headers = token.map(bearer).unwrap_or_default();
    let a = send(router, method, uri, &headers, body);
    (a.status, a.body)
}
