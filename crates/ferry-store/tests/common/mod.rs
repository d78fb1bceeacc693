#![allow(dead_code)]

use ferry_store::{ModelSigner, Store};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A node directory laid out like `ferry init` makes it, with a fresh rcgen identity key.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub key_pem: String,
}

impl Node {
    pub fn new() -> Node {
        let key = rcgen::KeyPair::generate().expect("rcgen key");
        Node {
            dir: tempfile::tempdir().expect("temp dir"),
            key_pem: key.serialize_pem(),
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn open(&self) -> Store {
        self.open_with_key(&self.key_pem)
    }

    pub fn open_with_key(&self, key_pem: &str) -> Store {
        let signer = ModelSigner::from_pem(key_pem).expect("signer from rcgen key");
        Store::open(&self.state_dir(), &self.data_dir(), signer).expect("open store")
    }

    /// A raw connection to the node's database, to play the attacker or inspect rows.
    pub fn raw_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.state_dir().join("ferry.db")).expect("raw db")
    }

    /// A file outside the data directory, as a user would register it from.
    pub fn write_input(&self, name: &str, content: &str) -> PathBuf {
        let dir = self.dir.path().join("inputs");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

/// Every entry under `dir`, recursively (files and directories), sorted.
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        out.push(p.clone());
        if p.is_dir() {
            out.extend(tree(&p));
        }
    }
    out.sort();
    out
}

/// A minimal tracing subscriber that keeps WARN events as text, to check what gets logged.
#[derive(Clone, Default)]
pub struct WarnCapture {
    pub lines: Arc<Mutex<Vec<String>>>,
}

struct FieldText(String);

impl tracing::field::Visit for FieldText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for WarnCapture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = FieldText(String::new());
        event.record(&mut text);
        self.lines.lock().unwrap().push(text.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// `test-data/datasets/<file>`; panics naming the file when it is missing.
#[allow(unused_imports)] // not every test binary that includes this module reads a dataset
pub use ferry_testdata::dataset;
