//! Online feature tables: a registered dataset held in memory as id → row, with only the
//! model's columns, in the model's order, after the party's fitted transform (if the service
//! has one), so a lookup is one hash probe and one slice.
//!
//! Memory bound: `rows × (8 × model features + id length + about 40)` bytes (the row values,
//! the id text and the hash entry). A dataset with more rows than `[serving]
//! max_table_rows`, or whose table would take more than `max_table_mb`, is refused with an
//! error naming the dataset, the limit and the setting; tables larger than memory are not
//! supported (no on-disk index).

use ferry_data::{Dataset, DatasetSpec, LabelKind};
use ferry_feature::table::Table;
use ferry_feature::transform::FittedTransform;
use ferry_store::{DataFiles, DatasetRecord};
use std::collections::HashMap;

/// Per-entry overhead counted against the memory limit (hash entry, string header).
const ENTRY_OVERHEAD: u64 = 40;

/// One party's features of a service, indexed by id.
pub struct FeatureTable {
    pub dataset: String,
    /// SHA-256 of the dataset file the table was built from.
    pub dataset_sha256: String,
    /// The model's columns, in the order of `values`' rows.
    pub columns: Vec<String>,
    index: HashMap<String, u32>,
    values: Vec<f64>,
}

/// Limits of a table (from `[serving]`).
#[derive(Clone, Copy, Debug)]
pub struct TableLimits {
    pub max_rows: u64,
    pub max_bytes: u64,
}

impl FeatureTable {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The row of `id` in the model's column order; `None` if the dataset has no such id.
    pub fn row(&self, id: &str) -> Option<&[f64]> {
        let d = self.columns.len();
        let i = *self.index.get(id)? as usize;
        self.values.get(i * d..(i + 1) * d)
    }

    /// Approximate memory of the table (what the limit counts).
    pub fn bytes(&self) -> u64 {
        self.index
            .keys()
            .map(|k| k.len() as u64 + ENTRY_OVERHEAD + 8 * self.columns.len() as u64)
            .sum()
    }

    /// Builds the table of `record` for a model whose columns are `columns`, after
    /// `transform`. Ids are the dataset's (composite ids joined as the dataset reader joins
    /// them), so an id means what it means in a batch prediction job.
    pub fn build(
        files: &DataFiles,
        record: &DatasetRecord,
        columns: &[String],
        transform: Option<&FittedTransform>,
        limits: TableLimits,
    ) -> Result<FeatureTable, String> {
        let name = &record.name;
        if record.rows > limits.max_rows {
            return Err(format!(
                "dataset '{name}' has {} rows, above [serving] max_table_rows = {}: an online \
                 feature table is held in memory; raise the limit if the machine has the memory",
                record.rows, limits.max_rows
            ));
        }
        let estimate = record.rows * (8 * columns.len() as u64 + ENTRY_OVERHEAD + 16);
        if estimate > limits.max_bytes {
            return Err(too_big(name, estimate, limits.max_bytes));
        }
        let data = load(files, record, transform)?;
        let positions: Vec<usize> = columns
            .iter()
            .map(|c| {
                data.feature_names
                    .iter()
                    .position(|f| f == c)
                    .ok_or_else(|| {
                        format!(
                            "dataset '{name}' has no column '{c}', which the model uses (it has: {})",
                            data.feature_names.join(", ")
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        let n = data.n_rows();
        let mut index = HashMap::with_capacity(n);
        let mut values = Vec::with_capacity(n * columns.len());
        for i in 0..n {
            let row = data.row(i);
            values.extend(positions.iter().map(|&j| row[j]));
            if index.insert(data.ids[i].clone(), i as u32).is_some() {
                return Err(format!(
                    "dataset '{name}' has id '{}' twice: an online feature table needs unique ids",
                    data.ids[i]
                ));
            }
        }
        let table = FeatureTable {
            dataset: name.clone(),
            dataset_sha256: record.sha256.clone(),
            columns: columns.to_vec(),
            index,
            values,
        };
        if table.bytes() > limits.max_bytes {
            return Err(too_big(name, table.bytes(), limits.max_bytes));
        }
        Ok(table)
    }
}

fn too_big(name: &str, bytes: u64, limit: u64) -> String {
    format!(
        "the online feature table of dataset '{name}' would take about {} MiB, above [serving] \
         max_table_mb = {}",
        bytes.div_ceil(1 << 20),
        limit >> 20
    )
}

/// The dataset as batch prediction reads it: the label left out, and with a transform the
/// same path as the `feature_transform` component (read as a table, transformed, then
/// numeric), so that online and offline values are the same numbers.
fn load(
    files: &DataFiles,
    record: &DatasetRecord,
    transform: Option<&FittedTransform>,
) -> Result<Dataset, String> {
    if record.format != ferry_store::DataFormat::Csv {
        return Err(format!(
            "dataset '{}' is Parquet; online feature tables read CSV datasets",
            record.name
        ));
    }
    match transform {
        None => {
            let spec = DatasetSpec {
                id_columns: record.id_columns.clone(),
                label: None,
                label_kind: LabelKind::Continuous,
                features: None,
                exclude: record.label.clone().into_iter().collect(),
            };
            Dataset::read_csv(files.source(&record.path), &spec)
                .map_err(|e| format!("dataset '{}': {e}", record.name))
        }
        Some(t) => {
            let mut table = Table::read_csv(
                files.source(&record.path),
                &record.id_columns,
                record.label.as_deref(),
            )
            .map_err(|e| format!("dataset '{}': {e}", record.name))?;
            table.labels = None;
            table.label_name = None;
            transform_table(t, &table).map_err(|e| format!("dataset '{}': {e}", record.name))
        }
    }
}

/// Applies a fitted transform and turns the result into numbers.
pub fn transform_table(t: &FittedTransform, table: &Table) -> Result<Dataset, String> {
    let out = t.apply(table).map_err(|e| e.to_string())?;
    out.to_dataset().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::{ModelSigner, RegisterDataset, Store};

    fn store_with(csv: &str) -> (tempfile::TempDir, DatasetRecord) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(
            &tmp.path().join("state"),
            &tmp.path().join("data"),
            ModelSigner::generate().unwrap(),
        )
        .unwrap();
        let file = tmp.path().join("d.csv");
        std::fs::write(&file, csv).unwrap();
        let mut req = RegisterDataset::new("d", &file);
        req.label = Some("y".into());
        req.label_kind = LabelKind::Binary;
        let rec = store.register_dataset(req).unwrap();
        (tmp, rec)
    }

    #[test]
    fn a_dataset_encrypted_at_rest_builds_the_same_table_through_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = Store::open(
            &tmp.path().join("state"),
            &tmp.path().join("data"),
            ModelSigner::generate().unwrap(),
        )
        .unwrap();
        store.set_at_rest_key(ferry_crypto::at_rest::AtRestKey::from_bytes([3; 16]));
        let file = tmp.path().join("d.csv");
        std::fs::write(&file, "id,a,b,y\nu1,1.5,2,0\nu2,,4,1\n").unwrap();
        let rec = store
            .register_dataset(RegisterDataset::new("d", &file))
            .unwrap();
        assert!(ferry_crypto::at_rest::is_encrypted(
            &std::fs::read(&rec.path).unwrap()
        ));
        let t = FeatureTable::build(store.data_files(), &rec, &["b".into()], None, LIMITS).unwrap();
        assert_eq!(t.row("u2"), Some(&[4.0][..]));
        // Without the store's key the sealed file is refused, naming it.
        let e = FeatureTable::build(&DataFiles::plain(), &rec, &["b".into()], None, LIMITS)
            .err()
            .unwrap();
        assert!(e.contains(&rec.path.display().to_string()), "{e}");
    }

    const LIMITS: TableLimits = TableLimits {
        max_rows: 100,
        max_bytes: 1 << 20,
    };

    #[test]
    fn rows_hold_the_model_columns_in_its_order_without_the_label() {
        let (_tmp, rec) = store_with("id,a,b,y\nu1,1.5,2,0\nu2,,4,1\n");
        let t = FeatureTable::build(
            &DataFiles::plain(),
            &rec,
            &["b".into(), "a".into()],
            None,
            LIMITS,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.row("u1"), Some(&[2.0, 1.5][..]));
        let u2 = t.row("u2").unwrap();
        assert!(u2[0] == 4.0 && u2[1].is_nan());
        assert!(t.row("u3").is_none());
        let e = FeatureTable::build(&DataFiles::plain(), &rec, &["y".into()], None, LIMITS)
            .err()
            .unwrap();
        assert!(e.contains("no column 'y'"), "{e}");
    }

    #[test]
    fn tables_over_the_limits_are_refused_naming_the_setting() {
        let (_tmp, rec) = store_with("id,a,y\nu1,1,0\nu2,2,1\nu3,3,0\n");
        let rows = TableLimits {
            max_rows: 2,
            max_bytes: 1 << 20,
        };
        let e = FeatureTable::build(&DataFiles::plain(), &rec, &["a".into()], None, rows)
            .err()
            .unwrap();
        assert!(
            e.contains("3 rows") && e.contains("max_table_rows = 2"),
            "{e}"
        );
        let bytes = TableLimits {
            max_rows: 100,
            max_bytes: 64,
        };
        let e = FeatureTable::build(&DataFiles::plain(), &rec, &["a".into()], None, bytes)
            .err()
            .unwrap();
        assert!(e.contains("max_table_mb"), "{e}");
        let (_tmp, dup) = store_with("id,a,y\nu1,1,0\nu1,2,1\n");
        let e = FeatureTable::build(&DataFiles::plain(), &dup, &["a".into()], None, LIMITS)
            .err()
            .unwrap();
        assert!(e.contains("'u1' twice"), "{e}");
    }
}
