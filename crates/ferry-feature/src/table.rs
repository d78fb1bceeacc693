//! A party's table with text columns kept as text, for the encoders of [`crate::transform`].
//!
//! [`ferry_data::Dataset`] holds numbers only: a feature column with a word in it is an error
//! there. Feature engineering needs the words (a city, an occupation) to encode them, so a
//! [`Table`] keeps each feature column either as numbers or as text:
//!
//! * a column is [`ColumnValues::Numeric`] when every non-missing cell parses as a number, and
//!   [`ColumnValues::Text`] otherwise (a column with no value at all is numeric, all `NaN`);
//! * a cell is missing when it is empty or one of [`ferry_data::MISSING_MARKERS`], exactly as
//!   [`ferry_data::parse_number`] decides for the rest of Ferry, in numeric and text columns
//!   alike. Text values are trimmed.
//!
//! Once every column is numeric (after one-hot, ordinal or WOE encoding),
//! [`Table::to_dataset`] gives the [`Dataset`] the training components read.
//!
//! Header and ids are read as [`Dataset::read_csv`] reads them (both go through
//! [`ferry_data::CsvTableReader`]): `id` (or the first column) unless id columns are named;
//! several id columns form one composite id joined with [`Dataset::ID_SEPARATOR`]. Every error
//! about a file names the file, and the row (1-based, the header is row 1) and the column
//! where they apply.

use ferry_data::{CsvTableReader, DataError, Dataset, parse_number};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What went wrong reading, writing or converting a [`Table`].
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Opening, parsing or writing the file (names file, row and column where they apply).
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(
        "{file}, row {row}, column '{column}': the label '{value}' is not a number \
         (the label column must be numeric, e.g. 0/1)"
    )]
    BadLabel {
        file: PathBuf,
        row: u64,
        column: String,
        value: String,
    },
    #[error("{file}, row {row}, column '{column}': the label is missing")]
    MissingLabel {
        file: PathBuf,
        row: u64,
        column: String,
    },
    #[error(
        "column{s} {columns} hold{verb} text, which a numeric dataset cannot: encode {them} \
         first with the feature_transform component's encoders (one_hot or ordinal, or woe \
         after binning), or leave {them} out",
        s = if .columns.len() == 1 { "" } else { "s" },
        verb = if .columns.len() == 1 { "s" } else { "" },
        them = if .columns.len() == 1 { "it" } else { "them" },
        columns = quoted(.columns)
    )]
    TextColumns { columns: Vec<String> },
    #[error("no column named '{column}' (columns are: {available})")]
    NoColumn { column: String, available: String },
    #[error("row {index} is out of range: the table has {rows} rows")]
    RowOutOfRange { index: usize, rows: usize },
    #[error("the table is inconsistent: {0}")]
    Shape(String),
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The values of one feature column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "values", rename_all = "snake_case")]
pub enum ColumnValues {
    /// `NaN` = missing.
    Numeric(Vec<f64>),
    /// `None` = missing.
    Text(Vec<Option<String>>),
}

impl ColumnValues {
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Numeric(v) => v.len(),
            ColumnValues::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, ColumnValues::Numeric(_))
    }

    /// `"numeric"` or `"text"`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ColumnValues::Numeric(_) => "numeric",
            ColumnValues::Text(_) => "text",
        }
    }

    pub fn is_missing(&self, row: usize) -> bool {
        match self {
            ColumnValues::Numeric(v) => v[row].is_nan(),
            ColumnValues::Text(v) => v[row].is_none(),
        }
    }

    pub fn missing_count(&self) -> usize {
        match self {
            ColumnValues::Numeric(v) => v.iter().filter(|x| x.is_nan()).count(),
            ColumnValues::Text(v) => v.iter().filter(|x| x.is_none()).count(),
        }
    }

    /// The cell as it would be written to a CSV file (`""` when missing).
    pub fn cell(&self, row: usize) -> String {
        match self {
            ColumnValues::Numeric(v) => format_number(v[row]),
            ColumnValues::Text(v) => v[row].clone().unwrap_or_default(),
        }
    }

    fn select(&self, rows: &[usize]) -> ColumnValues {
        match self {
            ColumnValues::Numeric(v) => ColumnValues::Numeric(rows.iter().map(|&i| v[i]).collect()),
            ColumnValues::Text(v) => {
                ColumnValues::Text(rows.iter().map(|&i| v[i].clone()).collect())
            }
        }
    }
}

/// One feature column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub values: ColumnValues,
}

impl Column {
    pub fn numeric(name: impl Into<String>, values: Vec<f64>) -> Self {
        Column {
            name: name.into(),
            values: ColumnValues::Numeric(values),
        }
    }

    /// A text column; `None` is missing.
    pub fn text<S: Into<String>>(name: impl Into<String>, values: Vec<Option<S>>) -> Self {
        Column {
            name: name.into(),
            values: ColumnValues::Text(values.into_iter().map(|v| v.map(Into::into)).collect()),
        }
    }
}

/// A party's table: ids, maybe labels, and feature columns that are numeric or text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// One per row; a composite id joins its parts with [`Dataset::ID_SEPARATOR`].
    pub ids: Vec<String>,
    /// The id column name(s) of the file (written back by [`Table::write_csv`]).
    pub id_columns: Vec<String>,
    pub label_name: Option<String>,
    pub labels: Option<Vec<f64>>,
    pub columns: Vec<Column>,
}

impl Table {
    /// Reads a CSV file with a header row. `id_columns` empty: `id` if the header has it, else
    /// the first column. `label`: the label column, which must be numeric and never missing.
    /// Every other column is a feature column, numeric or text (see the module docs). `src`
    /// is a path, or a [`ferry_data::Source`] with its opener (a node's encrypted file).
    pub fn read_csv<'a>(
        src: impl Into<ferry_data::Source<'a>>,
        id_columns: &[String],
        label: Option<&str>,
    ) -> Result<Table, TableError> {
        let src = src.into();
        let file = src.file();
        let mut table = CsvTableReader::open(src, id_columns)?;
        let header = table.header().to_vec();
        let id_idx = table.id_indices().to_vec();
        let label_idx = label.map(|n| table.column_index(n)).transpose()?;
        if let Some(li) = label_idx
            && id_idx.contains(&li)
        {
            return Err(DataError::Invalid {
                file,
                reason: format!("column '{}' cannot be both an id and the label", header[li]),
            }
            .into());
        }
        let feature_idx: Vec<usize> = (0..header.len())
            .filter(|i| !id_idx.contains(i) && Some(*i) != label_idx)
            .collect();

        let mut ids = Vec::new();
        let mut labels = label_idx.map(|_| Vec::new());
        // Cells of every feature column, trimmed; `None` for a missing cell.
        let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); feature_idx.len()];
        // Per column: is every non-missing cell so far a number?
        let mut numeric = vec![true; feature_idx.len()];
        let mut record = csv::StringRecord::new();
        while let Some((row, id)) = table.next_row(&mut record)? {
            ids.push(id);
            if let (Some(li), Some(labels)) = (label_idx, labels.as_mut()) {
                let column = header[li].clone();
                match parse_number(&record[li]) {
                    Ok(Some(v)) => labels.push(v),
                    Ok(None) => {
                        return Err(TableError::MissingLabel { file, row, column });
                    }
                    Err(_) => {
                        return Err(TableError::BadLabel {
                            file,
                            row,
                            column,
                            value: record[li].trim().to_string(),
                        });
                    }
                }
            }
            for (j, &i) in feature_idx.iter().enumerate() {
                let cell = record[i].trim();
                match parse_number(cell) {
                    Ok(None) => cells[j].push(None),
                    Ok(Some(_)) => cells[j].push(Some(cell.to_string())),
                    Err(_) => {
                        numeric[j] = false;
                        cells[j].push(Some(cell.to_string()));
                    }
                }
            }
        }
        if ids.is_empty() {
            return Err(DataError::NoRows { file }.into());
        }
        let columns = feature_idx
            .iter()
            .zip(cells)
            .zip(numeric)
            .map(|((&i, cells), numeric)| {
                let values = if numeric {
                    ColumnValues::Numeric(
                        cells
                            .iter()
                            .map(|c| {
                                c.as_deref()
                                    .and_then(|c| parse_number(c).ok().flatten())
                                    .unwrap_or(f64::NAN)
                            })
                            .collect(),
                    )
                } else {
                    ColumnValues::Text(cells)
                };
                Column {
                    name: header[i].clone(),
                    values,
                }
            })
            .collect();
        Ok(Table {
            ids,
            id_columns: table.id_columns().to_vec(),
            label_name: label.map(str::to_string),
            labels,
            columns,
        })
    }

    /// The numeric columns of a [`Dataset`] as a table (id column `id`).
    pub fn from_dataset(data: &Dataset) -> Table {
        Table {
            ids: data.ids.clone(),
            id_columns: vec!["id".to_string()],
            label_name: data.label_name.clone(),
            labels: data.labels.clone(),
            columns: data
                .feature_names
                .iter()
                .enumerate()
                .map(|(j, name)| Column::numeric(name.clone(), data.column(j)))
                .collect(),
        }
    }

    pub fn n_rows(&self) -> usize {
        self.ids.len()
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column named `name`, or an error listing the columns there are.
    pub fn require_column(&self, name: &str) -> Result<&Column, TableError> {
        self.column(name).ok_or_else(|| TableError::NoColumn {
            column: name.to_string(),
            available: self.column_names().join(", "),
        })
    }

    /// Names of the text columns, in table order.
    pub fn text_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| !c.values.is_numeric())
            .map(|c| c.name.as_str())
            .collect()
    }

    /// Checks that every column and the labels have one value per id and that column names
    /// are distinct.
    pub fn check(&self) -> Result<(), TableError> {
        let n = self.n_rows();
        if let Some(l) = &self.labels
            && l.len() != n
        {
            return Err(TableError::Shape(format!(
                "{} labels for {n} rows",
                l.len()
            )));
        }
        for (i, c) in self.columns.iter().enumerate() {
            if c.values.len() != n {
                return Err(TableError::Shape(format!(
                    "column '{}' has {} values for {n} rows",
                    c.name,
                    c.values.len()
                )));
            }
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(TableError::Shape(format!(
                    "column '{}' appears more than once",
                    c.name
                )));
            }
        }
        Ok(())
    }

    /// The rows at `indices`, in that order.
    pub fn select_rows(&self, indices: &[usize]) -> Result<Table, TableError> {
        let rows = self.n_rows();
        if let Some(&index) = indices.iter().find(|&&i| i >= rows) {
            return Err(TableError::RowOutOfRange { index, rows });
        }
        self.check()?;
        Ok(Table {
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            id_columns: self.id_columns.clone(),
            label_name: self.label_name.clone(),
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    values: c.values.select(indices),
                })
                .collect(),
        })
    }

    /// The table as a numeric [`Dataset`]; an error naming the text columns (and the encoders
    /// that turn them into numbers) if there are any.
    pub fn to_dataset(&self) -> Result<Dataset, TableError> {
        self.check()?;
        let text: Vec<String> = self
            .text_columns()
            .into_iter()
            .map(str::to_string)
            .collect();
        if !text.is_empty() {
            return Err(TableError::TextColumns { columns: text });
        }
        let n = self.n_rows();
        let d = self.columns.len();
        let mut features = vec![f64::NAN; n * d];
        for (j, c) in self.columns.iter().enumerate() {
            if let ColumnValues::Numeric(v) = &c.values {
                for (i, &x) in v.iter().enumerate() {
                    features[i * d + j] = x;
                }
            }
        }
        Dataset::from_parts(
            self.ids.clone(),
            self.columns.iter().map(|c| c.name.clone()).collect(),
            features,
            self.label_name.clone(),
            self.labels.clone(),
        )
        .map_err(TableError::Shape)
    }

    /// Writes `id column(s)[,label],features...` with a header. Missing values are empty
    /// cells; numbers are written in the shortest form that reads back to the same `f64`.
    /// A composite id is split back into its id columns.
    ///
    /// Reading the file back gives the same table, except that a text column whose present
    /// values all look like numbers comes back numeric, and a text value equal to a missing
    /// marker (`NA`, `null`, ...) comes back missing.
    ///
    /// `output` is a path, or a [`ferry_data::Source`] whose opener writes it (sealed, on an
    /// encrypting node).
    pub fn write_csv<'a>(
        &self,
        output: impl Into<ferry_data::Source<'a>>,
    ) -> Result<(), TableError> {
        self.check()?;
        let output = output.into();
        let file: PathBuf = output.file();
        let err = |e: &dyn std::fmt::Display| DataError::Write {
            file: file.clone(),
            reason: e.to_string(),
        };
        let id_columns = if self.id_columns.is_empty() {
            vec!["id".to_string()]
        } else {
            self.id_columns.clone()
        };
        let mut header = id_columns.clone();
        if let (Some(name), Some(_)) = (&self.label_name, &self.labels) {
            header.push(name.clone());
        }
        header.extend(self.columns.iter().map(|c| c.name.clone()));
        let mut w = csv::Writer::from_writer(output.create()?);
        w.write_record(&header).map_err(|e| err(&e))?;
        let mut rec: Vec<String> = Vec::with_capacity(header.len());
        for i in 0..self.n_rows() {
            rec.clear();
            if id_columns.len() == 1 {
                rec.push(self.ids[i].clone());
            } else {
                let parts: Vec<&str> = self.ids[i].split(Dataset::ID_SEPARATOR).collect();
                if parts.len() != id_columns.len() {
                    return Err(err(&format!(
                        "id of row {} has {} parts but there are {} id columns ({})",
                        i + 1,
                        parts.len(),
                        id_columns.len(),
                        id_columns.join(", ")
                    ))
                    .into());
                }
                rec.extend(parts.into_iter().map(str::to_string));
            }
            if let (Some(_), Some(l)) = (&self.label_name, &self.labels) {
                rec.push(format_number(l[i]));
            }
            rec.extend(self.columns.iter().map(|c| c.values.cell(i)));
            w.write_record(&rec).map_err(|e| err(&e))?;
        }
        w.into_inner()
            .map_err(|e| err(e.error()))?
            .finish()
            .map_err(|e| err(&e).into())
    }
}

fn format_number(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        format!("{v}")
    }
}
