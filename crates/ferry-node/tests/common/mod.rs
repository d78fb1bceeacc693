//! Node directories for the integration tests: each node with its own identity, pinned to
//! the others, as `ferry init` and `ferry peer add` would leave them.
#![allow(dead_code)]

use ferry_context::PartyId;
use ferry_data::Dataset;
use ferry_node::Node;
use ferry_store::{LabelKind, RegisterDataset};
use ferry_transport::NodeDir;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
