//! Which files on the node's machine the API may register as datasets by path.
//!
//! Datasets normally come in as uploads (`POST /api/v1/datasets/{name}/upload`, what
//! `ferry dataset add NAME --file F` does): the user sends bytes they hold, and the node reads
//! nothing of its own. Registering a file already on the node's machine by its path
//! (`POST /api/v1/datasets` with `{path}`, `ferry dataset add NAME --server-path P`) is allowed
//! only under the directories the operator lists in `ferry.toml`:
//!
//! ```toml
//! [datasets]
//! import_dirs = ["/srv/exports", "incoming"]   # relative: to the node directory
//! ```
//!
//! With no `import_dirs`, no path is accepted. The node's own directory (its private key,
//! peers, database, stored datasets and models) is never readable this way, even when an
//! import directory contains it; nor are its data and state directories, key and certificate
//! when `ferry.toml` places them elsewhere. Paths are resolved (`..`, symbolic links) before
//! the check, so a link inside an import directory that points out of it is refused.

use ferry_transport::NodeDir;
use ferry_transport::config::CONFIG_FILE;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The `[datasets]` table of `ferry.toml`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetImportSettings {
    /// Directories whose files may be registered by path; relative ones are relative to the
    /// node directory.
    pub import_dirs: Vec<PathBuf>,
}

#[derive(Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    datasets: DatasetImportSettings,
}

impl DatasetImportSettings {
    /// The `[datasets]` table of a `ferry.toml` text (defaults when it has none; the rest of
    /// the file is ignored here).
    pub fn from_toml(text: &str) -> Result<DatasetImportSettings, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Ok(file.datasets)
    }

    /// The `[datasets]` table of the node's `ferry.toml`, as read when the node started.
    pub fn load(node: &NodeDir) -> Result<DatasetImportSettings, String> {
        match node.config.other.get("datasets") {
            None => Ok(DatasetImportSettings::default()),
            Some(table) => table.clone().try_into().map_err(|e: toml::de::Error| {
                format!(
                    "{} [datasets]: {e}",
                    node.root().join(CONFIG_FILE).display()
                )
            }),
        }
    }
}

/// Where a node keeps its own files: its directory, and its data and state directories, key
/// and certificate wherever `ferry.toml` puts them.
pub fn node_owned_paths(node: &NodeDir) -> Vec<PathBuf> {
    let cfg = &node.config;
    std::iter::once(node.root().to_path_buf())
        .chain(
            [&cfg.data_dir, &cfg.state_dir, &cfg.key_file, &cfg.cert_file]
                .into_iter()
                .map(|p| node.path(p)),
        )
        .collect()
}

/// The place of [`node_owned_paths`] that `path` (resolved) lies in, if any.
pub fn owned_by_node(node: &NodeDir, path: &Path) -> Option<PathBuf> {
    let resolved = resolve(path);
    node_owned_paths(node)
        .iter()
        .map(|p| resolve(p))
        .find(|p| resolved.starts_with(p))
}

/// What the user is told to do instead of registering a path the node may not read.
const INSTEAD: &str = "upload the file with `ferry dataset add NAME --file F` or add its \
                       directory to [datasets] import_dirs in ferry.toml";

/// Checks that `path` (absolute, on the node's machine) may be registered: it resolves to a
/// regular file inside one of `import_dirs` and outside `node_root`. Returns the resolved
/// path, which is what should be read. Errors say what to do instead.
pub fn check_import_path(
    node_root: &Path,
    import_dirs: &[PathBuf],
    path: &Path,
) -> Result<PathBuf, String> {
    check_import_path_protecting(node_root, &[], import_dirs, path)
}

/// [`check_import_path`], also refusing anything inside `also_protected` (the node's data and
/// state directories, key and certificate files when they lie outside the node directory).
pub fn check_import_path_protecting(
    node_root: &Path,
    also_protected: &[PathBuf],
    import_dirs: &[PathBuf],
    path: &Path,
) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err(format!(
            "'{}' is not an absolute path: give the file's absolute path on the node's machine, \
             or {INSTEAD}",
            path.display()
        ));
    }
    let resolved = std::fs::canonicalize(path).map_err(|e| {
        format!(
            "cannot read '{}' on the node's machine: {e} (to register a file from your own \
             machine, upload it with `ferry dataset add NAME --file F`)",
            path.display()
        )
    })?;
    let root = resolve(node_root);
    if resolved.starts_with(&root) {
        return Err(format!(
            "'{}' is inside the node directory {}: the node's own files (its private key, \
             database, stored datasets and models) are never registered as datasets; copy the \
             data elsewhere and {INSTEAD}",
            path.display(),
            root.display()
        ));
    }
    if let Some(p) = also_protected
        .iter()
        .map(|p| resolve(p))
        .find(|p| resolved.starts_with(p))
    {
        return Err(format!(
            "'{}' is inside {}, which belongs to the node (ferry.toml): the node's own files \
             are never registered as datasets; copy the data elsewhere and {INSTEAD}",
            path.display(),
            p.display()
        ));
    }
    let dirs: Vec<PathBuf> = import_dirs
        .iter()
        .map(|d| {
            if d.is_absolute() {
                d.clone()
            } else {
                node_root.join(d)
            }
        })
        .collect();
    // A configured directory that does not exist (yet) admits nothing.
    if dirs
        .iter()
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .any(|d| resolved.starts_with(d))
    {
        if !resolved.is_file() {
            return Err(format!("'{}' is not a regular file", path.display()));
        }
        return Ok(resolved);
    }
    let configured = if dirs.is_empty() {
        "none is configured".to_string()
    } else {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let shown = if resolved.as_path() == path {
        String::new()
    } else {
        format!(" (resolves to '{}')", resolved.display())
    };
    Err(format!(
        "'{}'{shown} is not inside an import directory of this node (the [datasets] \
         import_dirs setting in ferry.toml; {configured}): {INSTEAD}",
        path.display()
    ))
}

/// The resolved form of a directory or file the node owns; as given when it cannot be resolved
/// (then nothing resolved lies inside it unless it is a prefix as written).
fn resolve(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Layout {
        _tmp: tempfile::TempDir,
        top: PathBuf,
        node: PathBuf,
        imports: PathBuf,
    }

    /// `top/node/identity/key.pem`, `top/imports/data.csv`, `top/elsewhere.csv`.
    fn layout() -> Layout {
        let tmp = tempfile::tempdir().unwrap();
        let top = std::fs::canonicalize(tmp.path()).unwrap();
        let node = top.join("node");
        let imports = top.join("imports");
        std::fs::create_dir_all(node.join("identity")).unwrap();
        std::fs::create_dir_all(&imports).unwrap();
        std::fs::write(node.join("identity/key.pem"), "secret").unwrap();
        std::fs::write(imports.join("data.csv"), "id,x\na,1\n").unwrap();
        std::fs::write(top.join("elsewhere.csv"), "id,x\na,1\n").unwrap();
        Layout {
            _tmp: tmp,
            top,
            node,
            imports,
        }
    }

    #[test]
    fn a_file_inside_an_import_dir_is_accepted_resolved() {
        let l = layout();
        let dirs = [l.imports.clone()];
        let got = check_import_path(&l.node, &dirs, &l.imports.join("data.csv")).unwrap();
        assert_eq!(got, l.imports.join("data.csv"));
        // Also through a non-canonical spelling that stays inside.
        let got = check_import_path(&l.node, &dirs, &l.imports.join("./x/../data.csv"));
        // `x` does not exist, so the path does not resolve; a `.` is fine.
        assert!(got.is_err());
        let got = check_import_path(&l.node, &dirs, &l.imports.join(".").join("data.csv"));
        assert_eq!(got.unwrap(), l.imports.join("data.csv"));
        // A relative import dir is relative to the node directory.
        let got = check_import_path(
            &l.node,
            &[PathBuf::from("../imports")],
            &l.imports.join("data.csv"),
        );
        assert_eq!(got.unwrap(), l.imports.join("data.csv"));
    }

    #[test]
    fn a_file_outside_every_import_dir_is_refused_naming_the_setting() {
        let l = layout();
        let e = check_import_path(
            &l.node,
            std::slice::from_ref(&l.imports),
            &l.top.join("elsewhere.csv"),
        )
        .unwrap_err();
        assert!(e.contains("[datasets] import_dirs"), "{e}");
        assert!(e.contains("ferry.toml"), "{e}");
        assert!(e.contains("ferry dataset add NAME --file F"), "{e}");
        // No import dirs at all: nothing is accepted, and the message says none is configured.
        let e = check_import_path(&l.node, &[], &l.imports.join("data.csv")).unwrap_err();
        assert!(e.contains("none is configured"), "{e}");
        // A directory itself is not a file.
        let e = check_import_path(&l.node, std::slice::from_ref(&l.top), &l.imports).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        // Relative paths are refused.
        let e = check_import_path(
            &l.node,
            std::slice::from_ref(&l.imports),
            Path::new("data.csv"),
        )
        .unwrap_err();
        assert!(e.contains("not an absolute path"), "{e}");
    }

    #[test]
    fn the_node_directory_is_refused_even_inside_an_import_dir() {
        let l = layout();
        let key = l.node.join("identity/key.pem");
        for dirs in [
            vec![],
            vec![l.imports.clone()],
            vec![l.top.clone()],
            vec![l.node.clone()],
        ] {
            let e = check_import_path(&l.node, &dirs, &key).unwrap_err();
            assert!(e.contains("inside the node directory"), "{e}");
            assert!(e.contains("ferry dataset add NAME --file F"), "{e}");
        }
        // Other protected places (a data directory configured outside the node directory).
        let data = l.top.join("node-data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("stored.csv"), "id\na\n").unwrap();
        let e = check_import_path_protecting(
            &l.node,
            std::slice::from_ref(&data),
            std::slice::from_ref(&l.top),
            &data.join("stored.csv"),
        )
        .unwrap_err();
        assert!(e.contains("belongs to the node"), "{e}");
    }

    #[test]
    fn dot_dot_escapes_are_refused() {
        let l = layout();
        let dirs = [l.imports.clone()];
        let e = check_import_path(&l.node, &dirs, &l.imports.join("../elsewhere.csv")).unwrap_err();
        assert!(e.contains("not inside an import directory"), "{e}");
        assert!(e.contains("resolves to"), "{e}");
        let e = check_import_path(&l.node, &dirs, &l.imports.join("../node/identity/key.pem"))
            .unwrap_err();
        assert!(e.contains("inside the node directory"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_escapes_are_refused() {
        let l = layout();
        let dirs = [l.imports.clone()];
        let to_key = l.imports.join("key.csv");
        std::os::unix::fs::symlink(l.node.join("identity/key.pem"), &to_key).unwrap();
        let e = check_import_path(&l.node, &dirs, &to_key).unwrap_err();
        assert!(e.contains("inside the node directory"), "{e}");
        let to_outside = l.imports.join("outside.csv");
        std::os::unix::fs::symlink(l.top.join("elsewhere.csv"), &to_outside).unwrap();
        let e = check_import_path(&l.node, &dirs, &to_outside).unwrap_err();
        assert!(e.contains("not inside an import directory"), "{e}");
        // A linked directory inside the import dir that leads into the node directory.
        let linked_dir = l.imports.join("node-link");
        std::os::unix::fs::symlink(&l.node, &linked_dir).unwrap();
        let e =
            check_import_path(&l.node, &dirs, &linked_dir.join("identity/key.pem")).unwrap_err();
        assert!(e.contains("inside the node directory"), "{e}");
        // A node directory reached through a link is still the node directory.
        let node_link = l.top.join("node-alias");
        std::os::unix::fs::symlink(&l.node, &node_link).unwrap();
        let e = check_import_path(
            &node_link,
            std::slice::from_ref(&l.top),
            &l.node.join("identity/key.pem"),
        )
        .unwrap_err();
        assert!(e.contains("inside the node directory"), "{e}");
    }

    #[test]
    fn settings_come_from_the_datasets_table() {
        let s = DatasetImportSettings::from_toml(
            "party = 'bank'\n[limits]\ntimeout_secs = 5\n[datasets]\nimport_dirs = ['/srv/x', 'in']\n",
        )
        .unwrap();
        assert_eq!(
            s.import_dirs,
            [PathBuf::from("/srv/x"), PathBuf::from("in")]
        );
        let none = DatasetImportSettings::from_toml("party = 'bank'\n").unwrap();
        assert!(none.import_dirs.is_empty());
        let e =
            DatasetImportSettings::from_toml("[datasets]\nimport_dir = ['/srv']\n").unwrap_err();
        assert!(e.contains("import_dir"), "{e}");
    }
}
