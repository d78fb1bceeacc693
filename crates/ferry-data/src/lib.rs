//! The tabular data a party owns, as Ferry's algorithms see it.
//!
//! Files follow the layout federated-learning platforms commonly use: an id column (the join
//! key), optionally a label column, and feature columns. [`Dataset`] holds the features as a
//! dense row-major `f64` matrix with `NaN` for missing values.
//!
//! Every error names the file, and where it applies the row (1-based, counting the header as
//! row 1, so it matches what an editor shows) and the column, and says what to do.

mod select;
mod source;
mod split;
pub mod synthetic;
mod table;

#[cfg(feature = "parquet")]
pub mod parquet;

pub use select::select_csv_columns;
#[cfg(feature = "parquet")]
pub use select::select_parquet_columns_to_csv;
#[cfg(feature = "parquet")]
pub use source::RandomAccess;
pub use source::{DataRead, DataWrite, Opened, Opener, PLAIN, Plain, Source, plain_opener};
pub use split::{SplitCounts, is_test_row, split_csv_by_id};
pub use table::{CsvTableReader, Dataset, DatasetSpec, LabelKind, id_column_names};

use std::path::PathBuf;

/// What went wrong reading or validating data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{file}: cannot open: {reason}")]
    Open { file: PathBuf, reason: String },
    #[error("{file}: the file is empty (no header row)")]
    Empty { file: PathBuf },
    #[error("{file}: has a header but no data rows")]
    NoRows { file: PathBuf },
    #[error("{file}: no column named '{column}' (columns are: {available})")]
    MissingColumn {
        file: PathBuf,
        column: String,
        available: String,
    },
    #[error("{file}: column '{column}' appears more than once in the header")]
    DuplicateColumn { file: PathBuf, column: String },
    #[error("{file}, row {row}: {reason}")]
    BadRow {
        file: PathBuf,
        row: u64,
        reason: String,
    },
    #[error("{file}, row {row}, column '{column}': {reason}")]
    BadValue {
        file: PathBuf,
        row: u64,
        column: String,
        reason: String,
    },
    #[error("{file}: {reason}")]
    Invalid { file: PathBuf, reason: String },
    #[error("{file}: cannot write: {reason}")]
    Write { file: PathBuf, reason: String },
}

/// Strings that mean "missing" in a numeric column (case-insensitive), besides the empty string.
pub const MISSING_MARKERS: [&str; 5] = ["na", "nan", "null", "none", "?"];

/// Parses a numeric cell: `Ok(None)` for a missing value, `Err` for anything else non-numeric.
pub fn parse_number(cell: &str) -> Result<Option<f64>, String> {
    let t = cell.trim();
    if t.is_empty() || MISSING_MARKERS.iter().any(|m| t.eq_ignore_ascii_case(m)) {
        return Ok(None);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        Ok(_) => Err(format!("'{t}' is not a finite number")),
        Err(_) => Err(format!("'{t}' is not a number")),
    }
}
