use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What went wrong in the store. Every variant names the thing it is about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no {kind} named '{name}' ({})", known_list(known))]
    NotFound {
        kind: &'static str,
        name: String,
        known: Vec<String>,
    },
    #[error("a {kind} named '{name}' already exists ({hint})")]
    AlreadyExists {
        kind: &'static str,
        name: String,
        hint: String,
    },
    #[error("{}", invalid_message(file.as_deref(), *row, column.as_deref(), reason))]
    InvalidInput {
        file: Option<PathBuf>,
        /// 1-based; for CSV the header is row 1 (as an editor shows it), for Parquet row 1 is
        /// the first data row.
        row: Option<u64>,
        column: Option<String>,
        reason: String,
    },
    #[error("{}", not_granted_message(dataset, party, job_id, project.as_deref(), granted_projects))]
    NotGranted {
        dataset: String,
        party: String,
        job_id: String,
        /// The job's project, if it names one.
        project: Option<String>,
        /// The projects the dataset is granted to (for the owner's own log).
        granted_projects: Vec<String>,
    },
    #[error("model '{name}' version {version} refused: {reason}")]
    TamperedModel {
        name: String,
        version: u32,
        reason: String,
    },
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error("node signing key: {0}")]
    Key(String),
    #[error(
        "database {path} is at schema version {found}, newer than this ferry supports ({supported}); upgrade ferry"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database error: {0}")]
    Db(String),
}

fn not_granted_message(
    dataset: &str,
    party: &str,
    job_id: &str,
    project: Option<&str>,
    granted_projects: &[String],
) -> String {
    let mut m =
        format!("dataset '{dataset}' is not granted to party '{party}' nor to job '{job_id}'");
    match project {
        Some(p) if granted_projects.iter().any(|g| g == p) => {
            let _ = write!(
                m,
                "; it is granted to project '{p}', but '{party}' is not a joined member of it"
            );
        }
        Some(p) => {
            let _ = write!(m, " nor to the job's project '{p}'");
        }
        None if !granted_projects.is_empty() => {
            let _ = write!(
                m,
                "; it is granted to project {} (a job of the project, naming it with `project:`, may use it)",
                granted_projects
                    .iter()
                    .map(|p| format!("'{p}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        None => {}
    }
    m.push_str("; its owner must grant it (to the party, to this job, or to a project of the job) before it can be used");
    m
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "there are none".to_string()
    } else {
        format!("known: {}", known.join(", "))
    }
}

fn invalid_message(
    file: Option<&Path>,
    row: Option<u64>,
    column: Option<&str>,
    reason: &str,
) -> String {
    let mut out = String::new();
    if let Some(f) = file {
        let _ = write!(out, "{}", f.display());
    }
    if let Some(r) = row {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "row {r}");
    }
    if let Some(c) = column {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "column '{c}'");
    }
    if out.is_empty() {
        reason.to_string()
    } else {
        format!("{out}: {reason}")
    }
}

impl StoreError {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            file: None,
            row: None,
            column: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_file(file: &Path, reason: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            file: Some(file.to_path_buf()),
            row: None,
            column: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: &Path, what: &str, err: impl std::fmt::Display) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            reason: format!("{what}: {err}"),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

impl From<ferry_data::DataError> for StoreError {
    fn from(e: ferry_data::DataError) -> Self {
        use ferry_data::DataError as D;
        let (file, row, column, reason) = match e {
            D::Open { file, reason } => {
                return StoreError::Io {
                    path: file,
                    reason: format!("cannot open: {reason}"),
                };
            }
            D::Empty { file } => (file, None, None, "the file is empty (no header row)".into()),
            D::NoRows { file } => (file, None, None, "has a header but no data rows".into()),
            D::MissingColumn {
                file,
                column,
                available,
            } => (
                file,
                None,
                Some(column),
                format!("no such column (columns are: {available})"),
            ),
            D::DuplicateColumn { file, column } => (
                file,
                None,
                Some(column),
                "appears more than once in the header".into(),
            ),
            D::BadRow { file, row, reason } => (file, Some(row), None, reason),
            D::BadValue {
                file,
                row,
                column,
                reason,
            } => (file, Some(row), Some(column), reason),
            D::Invalid { file, reason } => (file, None, None, reason),
            D::Write { file, reason } => {
                return StoreError::Io {
                    path: file,
                    reason: format!("cannot write: {reason}"),
                };
            }
        };
        StoreError::InvalidInput {
            file: Some(file),
            row,
            column,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_thing() {
        let e = StoreError::NotFound {
            kind: "dataset",
            name: "loans".into(),
            known: vec!["a".into(), "b".into()],
        };
        assert_eq!(e.to_string(), "no dataset named 'loans' (known: a, b)");
        let e = StoreError::InvalidInput {
            file: Some("x.csv".into()),
            row: Some(3),
            column: Some("age".into()),
            reason: "'abc' is not a number".into(),
        };
        assert_eq!(
            e.to_string(),
            "x.csv, row 3, column 'age': 'abc' is not a number"
        );
        assert_eq!(StoreError::invalid("bad").to_string(), "bad");
    }
}
