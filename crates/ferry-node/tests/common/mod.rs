//! Node directories for the integration tests: each node with its own identity, pinned to
//! the others, as `ferry init` and `ferry peer add` would leave them.
#![allow(dead_code)]

use ferry_context::PartyId;
use ferry_transport::NodeDir;
use std::path::{Path, PathBuf};

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
