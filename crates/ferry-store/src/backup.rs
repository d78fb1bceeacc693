//! A consistent copy of the database for `ferry backup`, taken while the node may be running.

use crate::{Store, StoreError};
use std::path::Path;

impl Store {
    /// Writes a consistent snapshot of the database to `dest` (which must not exist), with
    /// SQLite's `VACUUM INTO`: one read transaction, so the copy is the database as of one
    /// moment even while the node writes, and it has no write-ahead log to go with it.
    pub fn backup_database(&self, dest: &Path) -> Result<(), StoreError> {
        if dest.exists() {
            return Err(StoreError::invalid(format!(
                "{} exists already: a backup never overwrites a file",
                dest.display()
            )));
        }
        let text = dest
            .to_str()
            .ok_or_else(|| StoreError::invalid(format!("{} is not valid UTF-8", dest.display())))?;
        self.conn()
            .execute("VACUUM INTO ?1", [text])
            .map_err(|e| StoreError::io(dest, "cannot write the database snapshot", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelSigner, TokenRole};

    #[test]
    fn the_snapshot_opens_as_a_store_with_the_same_records_and_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let signer = ModelSigner::generate().unwrap();
        let store =
            Store::open(&tmp.path().join("state"), &tmp.path().join("data"), signer).unwrap();
        store.create_token("ops", TokenRole::Admin).unwrap();
        let snap_dir = tmp.path().join("copy");
        std::fs::create_dir_all(&snap_dir).unwrap();
        let dest = snap_dir.join(crate::DB_FILE);
        store.backup_database(&dest).unwrap();
        assert!(store.backup_database(&dest).is_err(), "overwrote a file");
        let copy = Store::open(
            &snap_dir,
            &tmp.path().join("data2"),
            ModelSigner::generate().unwrap(),
        )
        .unwrap();
        let names: Vec<String> = copy
            .list_tokens()
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["ops"]);
        assert_eq!(
            copy.schema_version().unwrap(),
            store.schema_version().unwrap()
        );
    }
}
