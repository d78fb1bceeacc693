//! Copying some columns of a table into a new CSV file (a job's reader uses this to leave out
//! columns a model cannot or must not use).

use crate::DataError;
use crate::source::{DataRead, DataWrite, Source};
use crate::table::open_csv;
use std::path::{Path, PathBuf};

/// Writes `columns` of the CSV file `input`, in that order, to a new CSV file `output`.
/// Returns the number of data rows copied. Every column must exist (the error lists the
/// ones the file has); a row with the wrong number of fields is an error naming it.
pub fn select_csv_columns<'a, 'b>(
    input: impl Into<Source<'a>>,
    columns: &[String],
    output: impl Into<Source<'b>>,
) -> Result<u64, DataError> {
    let input = input.into();
    let (mut reader, header) = open_csv(&input)?;
    let input = input.path();
    let positions = positions(input, &header, columns)?;
    let mut writer = CsvOut::create(&output.into())?;
    writer.row(columns.iter().map(String::as_str))?;
    let mut record = csv::StringRecord::new();
    let mut rows = 0u64;
    while next_record(input, &mut reader, &mut record, rows)? {
        rows += 1;
        writer.row(positions.iter().map(|&p| &record[p]))?;
    }
    writer.finish()?;
    Ok(rows)
}

/// Reads the next data record; `Ok(false)` at the end. `rows_read` data rows came before it
/// (for the row number of an error, counting the header as row 1 as an editor shows it).
pub(crate) fn next_record(
    input: &Path,
    reader: &mut csv::Reader<DataRead>,
    record: &mut csv::StringRecord,
    rows_read: u64,
) -> Result<bool, DataError> {
    reader.read_record(record).map_err(|e| DataError::BadRow {
        file: input.to_path_buf(),
        row: e.position().map_or(rows_read + 2, |p| p.line()),
        reason: e.to_string(),
    })
}

/// Writes `columns` of the Parquet file `input`, in that order, to a new CSV file `output`
/// (cells in their text form, see [`crate::parquet::cell_text`]; nulls as empty cells).
#[cfg(feature = "parquet")]
pub fn select_parquet_columns_to_csv<'a, 'b>(
    input: impl Into<Source<'a>>,
    columns: &[String],
    output: impl Into<Source<'b>>,
) -> Result<u64, DataError> {
    let mut rows_in = crate::parquet::ParquetRows::open_columns(input, columns)?;
    let mut writer = CsvOut::create(&output.into())?;
    writer.row(columns.iter().map(String::as_str))?;
    let mut cells = Vec::new();
    let mut rows = 0u64;
    while rows_in.next_row(&mut cells)? {
        rows += 1;
        writer.row(cells.iter().map(|c| c.as_deref().unwrap_or("")))?;
    }
    writer.finish()?;
    Ok(rows)
}

/// The header positions of `columns` (each must exist, and only once).
pub(crate) fn positions(
    file: &Path,
    header: &[String],
    columns: &[String],
) -> Result<Vec<usize>, DataError> {
    let mut out = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            return Err(DataError::DuplicateColumn {
                file: file.to_path_buf(),
                column: c.clone(),
            });
        }
        out.push(crate::table::header_index(file, header, c)?);
    }
    Ok(out)
}

/// A CSV writer whose errors name the output file, writing through the output's opener.
pub(crate) struct CsvOut {
    file: PathBuf,
    inner: csv::Writer<Box<dyn DataWrite>>,
}

impl CsvOut {
    pub(crate) fn create(output: &Source<'_>) -> Result<Self, DataError> {
        let inner = csv::Writer::from_writer(output.create()?);
        Ok(CsvOut {
            file: output.file(),
            inner,
        })
    }

    pub(crate) fn row<'r>(
        &mut self,
        cells: impl IntoIterator<Item = &'r str>,
    ) -> Result<(), DataError> {
        self.inner.write_record(cells).map_err(|e| self.error(e))
    }

    pub(crate) fn finish(self) -> Result<(), DataError> {
        let file = self.file;
        let err = |reason: String| DataError::Write {
            file: file.clone(),
            reason,
        };
        self.inner
            .into_inner()
            .map_err(|e| err(e.error().to_string()))?
            .finish()
            .map_err(|e| err(e.to_string()))
    }

    fn error(&self, e: csv::Error) -> DataError {
        DataError::Write {
            file: self.file.clone(),
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selected_columns_are_copied_in_the_order_asked_with_quoting_kept() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(
            &input,
            "id,y,a,segment,b\n1,0,0.5,\"gold, old\",7\n2,1,,silver,8\n",
        )
        .unwrap();
        let output = dir.path().join("out.csv");
        let rows = select_csv_columns(&input, &names(&["id", "b", "y", "a"]), &output).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(
            std::fs::read_to_string(&output).unwrap(),
            "id,b,y,a\n1,7,0,0.5\n2,8,1,\n"
        );
        // A quoted cell with a comma survives a copy.
        let rows = select_csv_columns(&input, &names(&["segment"]), &output).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(
            std::fs::read_to_string(&output).unwrap(),
            "segment\n\"gold, old\"\nsilver\n"
        );
    }

    #[test]
    fn unknown_or_repeated_columns_and_ragged_rows_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(&input, "id,a\n1,2\n3\n").unwrap();
        let output = dir.path().join("out.csv");
        let e = select_csv_columns(&input, &names(&["id", "zz"]), &output)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'zz'") && e.contains("id, a"), "{e}");
        let e = select_csv_columns(&input, &names(&["a", "a"]), &output)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'a'") && e.contains("more than once"), "{e}");
        let e = select_csv_columns(&input, &names(&["id"]), &output)
            .unwrap_err()
            .to_string();
        assert!(e.contains("in.csv") && e.contains("row 3"), "{e}");
    }
}
