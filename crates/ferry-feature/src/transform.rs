//! Fitted, serialisable transforms of a party's [`Table`], applied again at prediction.
//!
//! A transform is a list of steps ([`TransformParams::steps`]), each on some columns. Fitting
//! runs the steps in order: each step learns what it needs (means, quantile bounds, category
//! lists, ...) from the output of the steps before it, exactly as [`FittedTransform::apply`]
//! will feed it later. The fitted transform is stored with the model ([`FittedTransform::to_json`])
//! and applied to the prediction data with nothing learnt from that data.
//!
//! # Steps
//! Missing values (`NaN` in numeric columns, `None` in text columns) pass through every step
//! unchanged except [`TransformStep::Impute`] and the encoders.
//!
//! * `min_max_scale`: `(x − min) / (max − min)` with the training minimum and maximum. Values
//!   outside the training range map outside `[0, 1]` (nothing is clipped). A constant column
//!   (`max = min`) maps every value to 0.
//! * `standard_scale`: `(x − mean) / std` with the population standard deviation (divisor
//!   `n`). A constant column (`std = 0`) is only centred: `x − mean` (0 for the training
//!   values); never `NaN` or infinite.
//! * `impute`: fills missing values with the training `mean`, `median` (the mean of the two
//!   middle values for an even count) or `mode` (the most frequent value; ties go to the
//!   smallest number, or the first text in byte order), or a `constant` number or text.
//! * `clip`: clamps values to the training quantiles `lower_quantile` and `upper_quantile`
//!   (outlier clipping). A quantile `q` of `m` sorted values interpolates linearly between the
//!   values at positions `⌊q·(m−1)⌋` and `⌈q·(m−1)⌉` (0-based; NumPy's default).
//! * `one_hot`: one 0/1 column per category, named `column=category`, in place of the text
//!   column. The `max_categories` most frequent categories (ties: byte order) get a column;
//!   when there were more, the rest share a column `column:other`. When the training data had
//!   missing values, they get a column `column:missing`. At apply time a category never seen
//!   in training gives **all zeros** (also in `column:other`), and so does a missing value when
//!   training had none.
//! * `ordinal`: the category's index in the sorted (byte order) list of training categories,
//!   in place of the text column; a missing value becomes [`ORDINAL_MISSING`] (−1) and a
//!   category never seen in training [`ORDINAL_UNSEEN`] (−2).
//! * `woe`: each value becomes the WOE of its bin, from a binning and WOE computed beforehand
//!   (see [`crate::binning`] and [`crate::woe`]); missing values get the missing bin's WOE.
//!
//! The encoders (`one_hot`, `ordinal`, `woe`) output numeric columns; once every text column
//! is encoded, [`Table::to_dataset`] gives the numeric dataset the training components read.
//!
//! # Columns
//! Each step names its columns; left out (`null`), a step takes every column of the kind it
//! works on at that point of the pipeline: numeric columns for scaling, clipping and
//! `mean`/`median`/numeric `constant` imputation, text columns for the encoders and text
//! `constant` imputation, every column for `mode` imputation, every column with a WOE for
//! `woe`. A named column that does not exist is an error naming it.
//!
//! A column that was text in training may come back numeric in a small prediction file (all
//! its values happened to look like numbers): text steps read such numbers as their text
//! (`3.0` is `"3"`). A column that was numeric in training and holds text at apply time is an
//! error naming the column, row id and value.
//!
//! # Serialised form
//! JSON with a format name and version ([`TRANSFORM_FORMAT`], [`TRANSFORM_FORMAT_VERSION`]).
//! The learnt numbers are written as strings in Rust's shortest round-trip notation
//! (`"0.1"`, `"-3.5e-7"`), because JSON readers do not all parse every decimal back to the
//! same `f64`; reading accepts plain JSON numbers too. A reloaded transform therefore gives
//! bit-for-bit the output of the one that was saved.

use crate::binning::FeatureBinning;
use crate::table::{Column, ColumnValues, Table, TableError};
use crate::woe::{FeatureWoe, HostFeatureWoe};
use ferry_data::parse_number;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Identifies serialised fitted transforms.
pub const TRANSFORM_FORMAT: &str = "ferry-feature-transform";
/// Current version of the serialised form; [`FittedTransform::from_json`] refuses others.
pub const TRANSFORM_FORMAT_VERSION: u32 = 1;

/// Ordinal code of a missing value.
pub const ORDINAL_MISSING: f64 = -1.0;
/// Ordinal code of a category not seen in training.
pub const ORDINAL_UNSEEN: f64 = -2.0;

/// `max_categories` of a `one_hot` step unless set.
pub const DEFAULT_MAX_CATEGORIES: usize = 20;
/// Largest `max_categories` (each category is a column).
pub const MAX_CATEGORIES: usize = 1000;

/// Quantiles of a `clip` step unless set.
pub const DEFAULT_LOWER_QUANTILE: f64 = 0.01;
pub const DEFAULT_UPPER_QUANTILE: f64 = 0.99;

/// What went wrong fitting, applying or reading a transform. Steps are numbered from 1.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("invalid transform parameters: {0}")]
    InvalidParams(String),
    #[error("step {step} ({kind}): no column named '{column}' (columns are: {available})")]
    UnknownColumn {
        step: usize,
        kind: &'static str,
        column: String,
        available: String,
    },
    #[error("step {step} ({kind}): column '{column}' is {found}, but {kind} {needs}")]
    WrongKind {
        step: usize,
        kind: &'static str,
        column: String,
        found: &'static str,
        needs: String,
    },
    #[error(
        "step {step} ({kind}): column '{column}' has no value to learn from (every row is \
         missing); leave it out of the step or impute it with a constant first"
    )]
    NoValues {
        step: usize,
        kind: &'static str,
        column: String,
    },
    #[error(
        "step {step} ({kind}): column '{column}', row {row} (id '{id}'): '{value}' is not a \
         number, but the column was numeric when the transform was fitted"
    )]
    NotNumeric {
        step: usize,
        kind: &'static str,
        column: String,
        row: usize,
        id: String,
        value: String,
    },
    #[error("step {step} ({kind}): the new column '{column}' clashes with an existing column")]
    NameClash {
        step: usize,
        kind: &'static str,
        column: String,
    },
    #[error("step {step} (woe): {reason}")]
    Woe { step: usize, reason: String },
    #[error("not a usable fitted transform: {0}")]
    Format(String),
    #[error(transparent)]
    Table(#[from] TableError),
}

/// How [`TransformStep::Impute`] fills missing values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ImputeStrategy {
    /// Training mean (numeric columns).
    Mean,
    /// Training median (numeric columns).
    Median,
    /// Most frequent training value (numeric or text columns).
    Mode,
    /// A given number (numeric columns) or text (text columns): `{"constant": 0}`,
    /// `{"constant": "unknown"}`.
    Constant(FillValue),
}

/// A value that fills missing cells.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FillValue {
    Number(f64),
    Text(String),
}

/// One step of a transform, as the job's parameters give it. `columns: null` (or left out)
/// takes every column the step fits (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformStep {
    MinMaxScale {
        #[serde(default)]
        columns: Option<Vec<String>>,
    },
    StandardScale {
        #[serde(default)]
        columns: Option<Vec<String>>,
    },
    Impute {
        #[serde(default)]
        columns: Option<Vec<String>>,
        strategy: ImputeStrategy,
    },
    /// Outlier clipping to training quantiles, `0 ≤ lower_quantile < upper_quantile ≤ 1`.
    Clip {
        #[serde(default)]
        columns: Option<Vec<String>>,
        #[serde(default = "default_lower_quantile")]
        #[schemars(range(min = 0.0, max = 1.0))]
        lower_quantile: f64,
        #[serde(default = "default_upper_quantile")]
        #[schemars(range(min = 0.0, max = 1.0))]
        upper_quantile: f64,
    },
    OneHot {
        #[serde(default)]
        columns: Option<Vec<String>>,
        /// Categories with a column of their own (1 to [`MAX_CATEGORIES`]).
        #[serde(default = "default_max_categories")]
        #[schemars(range(min = 1, max = 1000))]
        max_categories: usize,
    },
    Ordinal {
        #[serde(default)]
        columns: Option<Vec<String>>,
    },
    /// Replace each value by the WOE of its bin (binning and WOE are given to
    /// [`FittedTransform::fit`]).
    Woe {
        #[serde(default)]
        columns: Option<Vec<String>>,
    },
}

fn default_lower_quantile() -> f64 {
    DEFAULT_LOWER_QUANTILE
}
fn default_upper_quantile() -> f64 {
    DEFAULT_UPPER_QUANTILE
}
fn default_max_categories() -> usize {
    DEFAULT_MAX_CATEGORIES
}

impl TransformStep {
    /// The step's name in parameters and messages (`"standard_scale"`).
    pub fn kind(&self) -> &'static str {
        match self {
            TransformStep::MinMaxScale { .. } => "min_max_scale",
            TransformStep::StandardScale { .. } => "standard_scale",
            TransformStep::Impute { .. } => "impute",
            TransformStep::Clip { .. } => "clip",
            TransformStep::OneHot { .. } => "one_hot",
            TransformStep::Ordinal { .. } => "ordinal",
            TransformStep::Woe { .. } => "woe",
        }
    }

    /// The columns named in the parameters (`None`: the step's default).
    pub fn columns(&self) -> Option<&[String]> {
        match self {
            TransformStep::MinMaxScale { columns }
            | TransformStep::StandardScale { columns }
            | TransformStep::Impute { columns, .. }
            | TransformStep::Clip { columns, .. }
            | TransformStep::OneHot { columns, .. }
            | TransformStep::Ordinal { columns }
            | TransformStep::Woe { columns } => columns.as_deref(),
        }
    }
}

/// Everything that configures a transform: its steps, in order. No steps: the table passes
/// through unchanged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TransformParams {
    pub steps: Vec<TransformStep>,
}

impl TransformParams {
    /// Reads parameters from JSON (unknown fields are an error) and validates them.
    pub fn from_json(json: &str) -> Result<Self, TransformError> {
        let p: TransformParams = serde_json::from_str(json).map_err(|e| {
            TransformError::InvalidParams(format!("cannot read transform parameters: {e}"))
        })?;
        p.validate()?;
        Ok(p)
    }

    /// Range checks that need no data; the error names the step and field.
    pub fn validate(&self) -> Result<(), TransformError> {
        let bad = |i: usize, step: &TransformStep, msg: String| {
            TransformError::InvalidParams(format!("step {} ({}): {msg}", i + 1, step.kind()))
        };
        for (i, step) in self.steps.iter().enumerate() {
            if let Some(columns) = step.columns() {
                if columns.is_empty() {
                    return Err(bad(
                        i,
                        step,
                        "columns is empty: name at least one column, or leave columns out to \
                         take the step's default columns"
                            .into(),
                    ));
                }
                for (j, c) in columns.iter().enumerate() {
                    if c.trim().is_empty() {
                        return Err(bad(i, step, "a column name is empty".into()));
                    }
                    if columns[..j].contains(c) {
                        return Err(bad(i, step, format!("column '{c}' is named twice")));
                    }
                }
            }
            match step {
                TransformStep::Clip {
                    lower_quantile: lo,
                    upper_quantile: hi,
                    ..
                } if !(lo.is_finite() && hi.is_finite() && 0.0 <= *lo && lo < hi && *hi <= 1.0) => {
                    return Err(bad(
                        i,
                        step,
                        format!(
                            "the quantiles must satisfy 0 ≤ lower_quantile < upper_quantile \
                             ≤ 1, got {lo} and {hi}"
                        ),
                    ));
                }
                TransformStep::OneHot { max_categories, .. }
                    if !(1..=MAX_CATEGORIES).contains(max_categories) =>
                {
                    return Err(bad(
                        i,
                        step,
                        format!(
                            "max_categories must be in 1..={MAX_CATEGORIES}, got \
                             {max_categories}"
                        ),
                    ));
                }
                TransformStep::Impute {
                    strategy: ImputeStrategy::Constant(FillValue::Number(v)),
                    ..
                } if !v.is_finite() => {
                    return Err(bad(
                        i,
                        step,
                        format!("the constant must be a finite number, got {v}"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A fill value as stored in a fitted `impute` step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fill {
    Number(#[serde(with = "exact")] f64),
    Text(String),
}

/// What `min_max_scale` learnt about one column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinMaxColumn {
    pub name: String,
    #[serde(with = "exact")]
    pub min: f64,
    #[serde(with = "exact")]
    pub max: f64,
}

/// What `standard_scale` learnt about one column (`std` is the population standard deviation;
/// 0 for a constant column, which is then only centred).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardColumn {
    pub name: String,
    #[serde(with = "exact")]
    pub mean: f64,
    #[serde(with = "exact")]
    pub std: f64,
}

/// What `impute` learnt about one column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImputeColumn {
    pub name: String,
    pub fill: Fill,
}

/// What `clip` learnt about one column: the training quantiles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipColumn {
    pub name: String,
    #[serde(with = "exact")]
    pub lower: f64,
    #[serde(with = "exact")]
    pub upper: f64,
}

/// What `one_hot` learnt about one column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneHotColumn {
    pub name: String,
    /// Categories with a column of their own, in output order (most frequent first).
    pub categories: Vec<String>,
    /// Training categories beyond `max_categories`: they share the column `name:other`
    /// (present when this is not empty).
    pub other: Vec<String>,
    /// Training data had missing values: they get the column `name:missing`.
    pub missing: bool,
}

impl OneHotColumn {
    /// Names of the output columns, in order.
    pub fn output_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .categories
            .iter()
            .map(|c| format!("{}={c}", self.name))
            .collect();
        if !self.other.is_empty() {
            names.push(format!("{}:other", self.name));
        }
        if self.missing {
            names.push(format!("{}:missing", self.name));
        }
        names
    }
}

/// What `ordinal` learnt about one column: the training categories, code = index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdinalColumn {
    pub name: String,
    pub categories: Vec<String>,
}

/// A fitted step: what each step learnt, per column, in the order the columns are processed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FittedStep {
    MinMaxScale { columns: Vec<MinMaxColumn> },
    StandardScale { columns: Vec<StandardColumn> },
    Impute { columns: Vec<ImputeColumn> },
    Clip { columns: Vec<ClipColumn> },
    OneHot { columns: Vec<OneHotColumn> },
    Ordinal { columns: Vec<OrdinalColumn> },
    Woe { columns: Vec<WoeColumn> },
}

impl FittedStep {
    pub fn kind(&self) -> &'static str {
        match self {
            FittedStep::MinMaxScale { .. } => "min_max_scale",
            FittedStep::StandardScale { .. } => "standard_scale",
            FittedStep::Impute { .. } => "impute",
            FittedStep::Clip { .. } => "clip",
            FittedStep::OneHot { .. } => "one_hot",
            FittedStep::Ordinal { .. } => "ordinal",
            FittedStep::Woe { .. } => "woe",
        }
    }

    /// The input columns of the step, in order.
    pub fn column_names(&self) -> Vec<&str> {
        fn names<T>(cols: &[T], f: impl Fn(&T) -> &str) -> Vec<&str> {
            cols.iter().map(f).collect()
        }
        match self {
            FittedStep::MinMaxScale { columns } => names(columns, |c| &c.name),
            FittedStep::StandardScale { columns } => names(columns, |c| &c.name),
            FittedStep::Impute { columns } => names(columns, |c| &c.name),
            FittedStep::Clip { columns } => names(columns, |c| &c.name),
            FittedStep::OneHot { columns } => names(columns, |c| &c.name),
            FittedStep::Ordinal { columns } => names(columns, |c| &c.name),
            FittedStep::Woe { columns } => names(columns, |c| &c.name),
        }
    }
}

/// A transform fitted on a party's training table.
#[derive(Clone, Debug, PartialEq)]
pub struct FittedTransform {
    steps: Vec<FittedStep>,
}

/// The serialised form: format, version, steps.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored<'a> {
    format: Cow<'a, str>,
    version: u32,
    steps: Cow<'a, [FittedStep]>,
}

impl FittedTransform {
    /// Fits the steps of `params` on `table`, in order (each on the output of the ones
    /// before, so fitting also checks that the transform applies to `table`). `woe` gives the
    /// binning and WOE of the features a `woe` step encodes; it is needed only when there is
    /// such a step.
    pub fn fit(
        table: &Table,
        params: &TransformParams,
        woe: Option<&[WoeInput]>,
    ) -> Result<FittedTransform, TransformError> {
        params.validate()?;
        table.check()?;
        let mut current = Cow::Borrowed(table);
        let mut steps = Vec::with_capacity(params.steps.len());
        for (i, spec) in params.steps.iter().enumerate() {
            let step = i + 1;
            let fitted = fit_step(step, spec, &current, woe)?;
            // Also after the last step: what apply would refuse (a clash of new column
            // names) is refused at fit time.
            current = Cow::Owned(apply_step(step, &fitted, &current)?);
            steps.push(fitted);
        }
        Ok(FittedTransform { steps })
    }

    /// A transform from fitted steps (checked as [`FittedTransform::from_json`] checks them).
    pub fn from_steps(steps: Vec<FittedStep>) -> Result<Self, TransformError> {
        let t = FittedTransform { steps };
        t.check()?;
        Ok(t)
    }

    pub fn steps(&self) -> &[FittedStep] {
        &self.steps
    }

    /// Applies the fitted steps to `table` (ids and labels unchanged).
    pub fn apply(&self, table: &Table) -> Result<Table, TransformError> {
        table.check()?;
        let mut current = table.clone();
        for (i, s) in self.steps.iter().enumerate() {
            current = apply_step(i + 1, s, &current)?;
        }
        Ok(current)
    }

    /// The serialised form (JSON with format name and version).
    pub fn to_json(&self) -> String {
        let stored = Stored {
            format: Cow::Borrowed(TRANSFORM_FORMAT),
            version: TRANSFORM_FORMAT_VERSION,
            steps: Cow::Borrowed(&self.steps),
        };
        // Every field is a string, a number written as a string, a bool or a list of them.
        serde_json::to_string_pretty(&stored).unwrap_or_else(|e| {
            unreachable!("a fitted transform always serialises: {e}");
        })
    }

    /// Reads and checks a serialised fitted transform.
    pub fn from_json(json: &str) -> Result<Self, TransformError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header = serde_json::from_str(json)
            .map_err(|e| TransformError::Format(format!("not a fitted transform: {e}")))?;
        if header.format != TRANSFORM_FORMAT {
            return Err(TransformError::Format(format!(
                "format '{}' is not a fitted transform ('{TRANSFORM_FORMAT}')",
                header.format
            )));
        }
        if header.version != TRANSFORM_FORMAT_VERSION {
            return Err(TransformError::Format(format!(
                "version {} is not supported (this build reads version \
                 {TRANSFORM_FORMAT_VERSION}); fit the transform again",
                header.version
            )));
        }
        let stored: Stored<'static> = serde_json::from_str(json)
            .map_err(|e| TransformError::Format(format!("corrupt fitted transform: {e}")))?;
        Self::from_steps(stored.steps.into_owned())
    }

    /// Checks what a stored transform holds: finite numbers, ordered bounds, distinct
    /// categories, WOE values matching their bins.
    fn check(&self) -> Result<(), TransformError> {
        for (i, s) in self.steps.iter().enumerate() {
            let bad = |msg: String| {
                TransformError::Format(format!("step {} ({}): {msg}", i + 1, s.kind()))
            };
            let finite = |name: &str, what: &str, v: f64| {
                if v.is_finite() {
                    Ok(())
                } else {
                    Err(bad(format!("column '{name}': {what} is {v}")))
                }
            };
            match s {
                FittedStep::MinMaxScale { columns } => {
                    for c in columns {
                        finite(&c.name, "min", c.min)?;
                        finite(&c.name, "max", c.max)?;
                        if c.min > c.max {
                            return Err(bad(format!("column '{}': min > max", c.name)));
                        }
                    }
                }
                FittedStep::StandardScale { columns } => {
                    for c in columns {
                        finite(&c.name, "mean", c.mean)?;
                        finite(&c.name, "std", c.std)?;
                        if c.std < 0.0 {
                            return Err(bad(format!("column '{}': std < 0", c.name)));
                        }
                    }
                }
                FittedStep::Impute { columns } => {
                    for c in columns {
                        if let Fill::Number(v) = c.fill {
                            finite(&c.name, "the fill value", v)?;
                        }
                    }
                }
                FittedStep::Clip { columns } => {
                    for c in columns {
                        finite(&c.name, "lower", c.lower)?;
                        finite(&c.name, "upper", c.upper)?;
                        if c.lower > c.upper {
                            return Err(bad(format!("column '{}': lower > upper", c.name)));
                        }
                    }
                }
                FittedStep::OneHot { columns } => {
                    for c in columns {
                        distinct(&c.name, c.categories.iter().chain(&c.other)).map_err(bad)?;
                    }
                }
                FittedStep::Ordinal { columns } => {
                    for c in columns {
                        distinct(&c.name, c.categories.iter()).map_err(bad)?;
                    }
                }
                FittedStep::Woe { columns } => {
                    for c in columns {
                        c.check().map_err(bad)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn distinct<'a>(column: &str, values: impl Iterator<Item = &'a String>) -> Result<(), String> {
    let mut seen = HashSet::new();
    for v in values {
        if !seen.insert(v) {
            return Err(format!("column '{column}': category '{v}' appears twice"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fitting

/// Columns of the kind a step works on by default.
#[derive(Clone, Copy, PartialEq)]
enum Wants {
    Numeric,
    Text,
    Any,
}

impl Wants {
    fn accepts(self, values: &ColumnValues) -> bool {
        match self {
            Wants::Numeric => values.is_numeric(),
            Wants::Text => !values.is_numeric(),
            Wants::Any => true,
        }
    }
}

/// The columns a step works on: those named (each must exist) or the default ones.
fn resolve<'t>(
    step: usize,
    spec: &TransformStep,
    table: &'t Table,
    wants: Wants,
) -> Result<Vec<&'t Column>, TransformError> {
    match spec.columns() {
        Some(names) => names
            .iter()
            .map(|n| find(step, spec.kind(), table, n))
            .collect(),
        None => Ok(table
            .columns
            .iter()
            .filter(|c| wants.accepts(&c.values))
            .collect()),
    }
}

fn find<'t>(
    step: usize,
    kind: &'static str,
    table: &'t Table,
    name: &str,
) -> Result<&'t Column, TransformError> {
    table
        .column(name)
        .ok_or_else(|| TransformError::UnknownColumn {
            step,
            kind,
            column: name.to_string(),
            available: table.column_names().join(", "),
        })
}

/// The numbers of a column at fit time: a text column is an error (encode it first).
fn numbers_for_fit<'c>(
    step: usize,
    kind: &'static str,
    column: &'c Column,
) -> Result<&'c [f64], TransformError> {
    match &column.values {
        ColumnValues::Numeric(v) => Ok(v),
        ColumnValues::Text(_) => Err(TransformError::WrongKind {
            step,
            kind,
            column: column.name.clone(),
            found: "text",
            needs: "needs numeric columns (encode text columns first with one_hot, ordinal \
                    or woe)"
                .into(),
        }),
    }
}

/// The non-missing values of a column, sorted; an error when there are none.
fn sorted_present(
    step: usize,
    kind: &'static str,
    name: &str,
    values: &[f64],
) -> Result<Vec<f64>, TransformError> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return Err(TransformError::NoValues {
            step,
            kind,
            column: name.to_string(),
        });
    }
    v.sort_by(f64::total_cmp);
    Ok(v)
}

/// Mean computed relative to the first value, so that a constant column gives exactly its
/// value (and then a standard deviation of exactly 0).
fn mean_of(sorted: &[f64]) -> f64 {
    let c = sorted[0];
    c + sorted.iter().map(|x| x - c).sum::<f64>() / sorted.len() as f64
}

/// Quantile with linear interpolation between the closest ranks (NumPy's default).
fn quantile_of(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    if lo == hi || frac == 0.0 {
        sorted[lo]
    } else {
        sorted[lo] + frac * (sorted[hi] - sorted[lo])
    }
}

fn median_of(sorted: &[f64]) -> f64 {
    let m = sorted.len();
    if m % 2 == 1 {
        sorted[m / 2]
    } else {
        let (a, b) = (sorted[m / 2 - 1], sorted[m / 2]);
        a + (b - a) / 2.0
    }
}

/// Most frequent value of sorted numbers; ties go to the smallest.
fn mode_of_numbers(sorted: &[f64]) -> f64 {
    let (mut best, mut best_n) = (sorted[0], 0);
    let mut i = 0;
    while i < sorted.len() {
        let v = sorted[i];
        let start = i;
        while i < sorted.len() && sorted[i] == v {
            i += 1;
        }
        if i - start > best_n {
            (best, best_n) = (v, i - start);
        }
    }
    best
}

/// The cells of a column as text: numbers as their `Display` text (`3.0` is `"3"`).
fn texts(values: &ColumnValues) -> Cow<'_, [Option<String>]> {
    match values {
        ColumnValues::Text(v) => Cow::Borrowed(v),
        ColumnValues::Numeric(v) => Cow::Owned(
            v.iter()
                .map(|x| (!x.is_nan()).then(|| x.to_string()))
                .collect(),
        ),
    }
}

/// Counts of the present categories, in byte order.
fn category_counts(values: &[Option<String>]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for v in values.iter().flatten() {
        *counts.entry(v.as_str()).or_insert(0) += 1;
    }
    counts
}

fn fit_step(
    step: usize,
    spec: &TransformStep,
    table: &Table,
    woe: Option<&[WoeInput]>,
) -> Result<FittedStep, TransformError> {
    let kind = spec.kind();
    Ok(match spec {
        TransformStep::MinMaxScale { .. } => {
            let mut out = Vec::new();
            for c in resolve(step, spec, table, Wants::Numeric)? {
                let v = sorted_present(step, kind, &c.name, numbers_for_fit(step, kind, c)?)?;
                out.push(MinMaxColumn {
                    name: c.name.clone(),
                    min: v[0],
                    max: v[v.len() - 1],
                });
            }
            FittedStep::MinMaxScale { columns: out }
        }
        TransformStep::StandardScale { .. } => {
            let mut out = Vec::new();
            for c in resolve(step, spec, table, Wants::Numeric)? {
                let v = sorted_present(step, kind, &c.name, numbers_for_fit(step, kind, c)?)?;
                let mean = mean_of(&v);
                let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
                out.push(StandardColumn {
                    name: c.name.clone(),
                    mean,
                    std: var.sqrt(),
                });
            }
            FittedStep::StandardScale { columns: out }
        }
        TransformStep::Clip {
            lower_quantile,
            upper_quantile,
            ..
        } => {
            let mut out = Vec::new();
            for c in resolve(step, spec, table, Wants::Numeric)? {
                let v = sorted_present(step, kind, &c.name, numbers_for_fit(step, kind, c)?)?;
                out.push(ClipColumn {
                    name: c.name.clone(),
                    lower: quantile_of(&v, *lower_quantile),
                    upper: quantile_of(&v, *upper_quantile),
                });
            }
            FittedStep::Clip { columns: out }
        }
        TransformStep::Impute { strategy, .. } => {
            let wants = match strategy {
                ImputeStrategy::Mean | ImputeStrategy::Median => Wants::Numeric,
                ImputeStrategy::Mode => Wants::Any,
                ImputeStrategy::Constant(FillValue::Number(_)) => Wants::Numeric,
                ImputeStrategy::Constant(FillValue::Text(_)) => Wants::Text,
            };
            let mut out = Vec::new();
            for c in resolve(step, spec, table, wants)? {
                let fill = match (strategy, &c.values) {
                    (ImputeStrategy::Mean, _) => Fill::Number(mean_of(&sorted_present(
                        step,
                        kind,
                        &c.name,
                        numbers_for_fit(step, kind, c)?,
                    )?)),
                    (ImputeStrategy::Median, _) => Fill::Number(median_of(&sorted_present(
                        step,
                        kind,
                        &c.name,
                        numbers_for_fit(step, kind, c)?,
                    )?)),
                    (ImputeStrategy::Mode, ColumnValues::Numeric(v)) => {
                        Fill::Number(mode_of_numbers(&sorted_present(step, kind, &c.name, v)?))
                    }
                    (ImputeStrategy::Mode, ColumnValues::Text(v)) => {
                        let counts = category_counts(v);
                        // BTreeMap order: the first of the most frequent in byte order.
                        let best = counts.values().copied().max().ok_or_else(|| {
                            TransformError::NoValues {
                                step,
                                kind,
                                column: c.name.clone(),
                            }
                        })?;
                        let text = counts
                            .iter()
                            .find(|(_, n)| **n == best)
                            .map(|(t, _)| t.to_string())
                            .unwrap_or_default();
                        Fill::Text(text)
                    }
                    (ImputeStrategy::Constant(FillValue::Number(x)), ColumnValues::Numeric(_)) => {
                        Fill::Number(*x)
                    }
                    (ImputeStrategy::Constant(FillValue::Text(t)), ColumnValues::Text(_)) => {
                        Fill::Text(t.clone())
                    }
                    (ImputeStrategy::Constant(fill), values) => {
                        return Err(TransformError::WrongKind {
                            step,
                            kind,
                            column: c.name.clone(),
                            found: values.kind(),
                            needs: format!(
                                "with a {} constant needs {} columns",
                                if matches!(fill, FillValue::Number(_)) {
                                    "number"
                                } else {
                                    "text"
                                },
                                if matches!(fill, FillValue::Number(_)) {
                                    "numeric"
                                } else {
                                    "text"
                                }
                            ),
                        });
                    }
                };
                out.push(ImputeColumn {
                    name: c.name.clone(),
                    fill,
                });
            }
            FittedStep::Impute { columns: out }
        }
        TransformStep::OneHot { max_categories, .. } => {
            let mut out = Vec::new();
            for c in resolve(step, spec, table, Wants::Text)? {
                let values = texts(&c.values);
                let counts = category_counts(&values);
                let mut by_count: Vec<(&str, usize)> = counts.into_iter().collect();
                // Most frequent first; the sort is stable, so ties stay in byte order.
                by_count.sort_by_key(|p| std::cmp::Reverse(p.1));
                let keep = by_count.len().min(*max_categories);
                out.push(OneHotColumn {
                    name: c.name.clone(),
                    categories: by_count[..keep].iter().map(|p| p.0.to_string()).collect(),
                    other: by_count[keep..].iter().map(|p| p.0.to_string()).collect(),
                    missing: values.iter().any(Option::is_none),
                });
            }
            FittedStep::OneHot { columns: out }
        }
        TransformStep::Ordinal { .. } => {
            let mut out = Vec::new();
            for c in resolve(step, spec, table, Wants::Text)? {
                let values = texts(&c.values);
                out.push(OrdinalColumn {
                    name: c.name.clone(),
                    categories: category_counts(&values)
                        .into_keys()
                        .map(str::to_string)
                        .collect(),
                });
            }
            FittedStep::Ordinal { columns: out }
        }
        TransformStep::Woe { columns } => fit_woe(step, columns.as_deref(), table, woe)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Applying

/// The numbers of a column at apply time; text is parsed (a column read as text because of a
/// stray word is an error naming the row and the value).
fn numbers_for_apply<'c>(
    step: usize,
    kind: &'static str,
    table: &Table,
    column: &'c Column,
) -> Result<Cow<'c, [f64]>, TransformError> {
    match &column.values {
        ColumnValues::Numeric(v) => Ok(Cow::Borrowed(v)),
        ColumnValues::Text(v) => v
            .iter()
            .enumerate()
            .map(|(row, cell)| match cell {
                None => Ok(f64::NAN),
                Some(s) => match parse_number(s) {
                    Ok(x) => Ok(x.unwrap_or(f64::NAN)),
                    Err(_) => Err(TransformError::NotNumeric {
                        step,
                        kind,
                        column: column.name.clone(),
                        row,
                        id: table.ids.get(row).cloned().unwrap_or_default(),
                        value: s.clone(),
                    }),
                },
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Cow::Owned),
    }
}

/// Replaces each named column by what `f` makes of it (one or more columns), keeping the
/// other columns where they are.
fn map_columns<T>(
    step: usize,
    kind: &'static str,
    table: &Table,
    fitted: &[T],
    name_of: impl Fn(&T) -> &str,
    mut f: impl FnMut(&T, &Column) -> Result<Vec<Column>, TransformError>,
) -> Result<Table, TransformError> {
    let mut replaced: HashMap<&str, Vec<Column>> = HashMap::with_capacity(fitted.len());
    for fc in fitted {
        let name = name_of(fc);
        let column = find(step, kind, table, name)?;
        replaced.insert(name, f(fc, column)?);
    }
    let mut columns = Vec::with_capacity(table.columns.len());
    for c in &table.columns {
        match replaced.remove(c.name.as_str()) {
            Some(new) => columns.extend(new),
            None => columns.push(c.clone()),
        }
    }
    let mut seen = HashSet::with_capacity(columns.len());
    for c in &columns {
        if !seen.insert(c.name.as_str()) {
            return Err(TransformError::NameClash {
                step,
                kind,
                column: c.name.clone(),
            });
        }
    }
    Ok(Table {
        ids: table.ids.clone(),
        id_columns: table.id_columns.clone(),
        label_name: table.label_name.clone(),
        labels: table.labels.clone(),
        columns,
    })
}

fn numeric_column(name: &str, values: Vec<f64>) -> Vec<Column> {
    vec![Column::numeric(name, values)]
}

fn apply_step(step: usize, fitted: &FittedStep, table: &Table) -> Result<Table, TransformError> {
    let kind = fitted.kind();
    match fitted {
        FittedStep::MinMaxScale { columns } => map_columns(
            step,
            kind,
            table,
            columns,
            |c| &c.name,
            |fc, col| {
                let range = fc.max - fc.min;
                let v = numbers_for_apply(step, kind, table, col)?;
                Ok(numeric_column(
                    &fc.name,
                    v.iter()
                        .map(|&x| {
                            if x.is_nan() {
                                x
                            } else if range > 0.0 {
                                (x - fc.min) / range
                            } else {
                                0.0
                            }
                        })
                        .collect(),
                ))
            },
        ),
        FittedStep::StandardScale { columns } => map_columns(
            step,
            kind,
            table,
            columns,
            |c| &c.name,
            |fc, col| {
                let scale = if fc.std > 0.0 { fc.std } else { 1.0 };
                let v = numbers_for_apply(step, kind, table, col)?;
                Ok(numeric_column(
                    &fc.name,
                    v.iter().map(|&x| (x - fc.mean) / scale).collect(),
                ))
            },
        ),
        FittedStep::Clip { columns } => map_columns(
            step,
            kind,
            table,
            columns,
            |c| &c.name,
            |fc, col| {
                let v = numbers_for_apply(step, kind, table, col)?;
                Ok(numeric_column(
                    &fc.name,
                    v.iter()
                        .map(|&x| {
                            if x.is_nan() {
                                x
                            } else {
                                x.clamp(fc.lower, fc.upper)
                            }
                        })
                        .collect(),
                ))
            },
        ),
        FittedStep::Impute { columns } => map_columns(
            step,
            kind,
            table,
            columns,
            |c| &c.name,
            |fc, col| {
                Ok(vec![match &fc.fill {
                    Fill::Number(fill) => {
                        let v = numbers_for_apply(step, kind, table, col)?;
                        Column::numeric(
                            &fc.name,
                            v.iter()
                                .map(|&x| if x.is_nan() { *fill } else { x })
                                .collect(),
                        )
                    }
                    Fill::Text(fill) => Column {
                        name: fc.name.clone(),
                        values: ColumnValues::Text(
                            texts(&col.values)
                                .iter()
                                .map(|x| Some(x.clone().unwrap_or_else(|| fill.clone())))
                                .collect(),
                        ),
                    },
                }])
            },
        ),
        FittedStep::OneHot { columns } => map_columns(
            step,
            kind,
            table,
            columns,
            |c| &c.name,
            |fc, col| {
                let index: HashMap<&str, usize> = fc
                    .categories
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.as_str(), i))
                    .collect();
                let other: HashSet<&str> = fc.other.iter().map(String::as_str).collect();
                let names = fc.output_names();
                let other_col = (!fc.other.is_empty()).then_some(fc.categories.len());
                let missing_col = fc
                    .missing
                    .then_some(fc.categories.len() + usize::from(!fc.other.is_empty()));
                let n = table.n_rows();
                let mut out = vec![vec![0.0; n]; names.len()];
                for (row, v) in texts(&col.values).iter().enumerate() {
                    let hot = match v {
                        None => missing_col,
                        Some(s) => index
                            .get(s.as_str())
                            .copied()
                            .or_else(|| other_col.filter(|_| other.contains(s.as_str()))),
                    };
                    if let Some(j) = hot {
                        out[j][row] = 1.0;
                    }
                }
                Ok(names
                    .into_iter()
                    .zip(out)
                    .map(|(name, values)| Column::numeric(name, values))
                    .collect())
            },
        ),
        FittedStep::Ordinal { columns } => map_columns(
            step,
            kind,
            table,
            columns,
            |c| &c.name,
            |fc, col| {
                let index: HashMap<&str, usize> = fc
                    .categories
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.as_str(), i))
                    .collect();
                Ok(numeric_column(
                    &fc.name,
                    texts(&col.values)
                        .iter()
                        .map(|v| match v {
                            None => ORDINAL_MISSING,
                            Some(s) => index.get(s.as_str()).map_or(ORDINAL_UNSEEN, |&i| i as f64),
                        })
                        .collect(),
                ))
            },
        ),
        FittedStep::Woe { columns } => map_columns(
            step,
            kind,
            table,
            columns,
            |c| &c.name,
            |fc, col| Ok(numeric_column(&fc.name, fc.encode(&col.values))),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// WOE

/// What a `woe` step needs about one feature: its bins and the WOE of each bin (in bin
/// order, the missing bin last, `binning.n_bins()` values).
#[derive(Clone, Debug, PartialEq)]
pub struct WoeInput {
    pub binning: FeatureBinning,
    pub woe: Vec<f64>,
}

impl WoeInput {
    /// A feature of this party from the WOE it computed ([`FeatureWoe`], the guest's own
    /// features after [`crate::woe::federated_woe`]). The WOE must have one value per bin.
    pub fn from_feature_woe(
        binning: FeatureBinning,
        woe: &FeatureWoe,
    ) -> Result<Self, TransformError> {
        Self::checked(binning, woe.woe.clone())
    }

    /// A host's feature from the WOE the guest sent it ([`HostFeatureWoe`]); an error when
    /// the guest kept the WOE to itself (`send_woe_to_host: false`).
    pub fn from_host_woe(
        binning: FeatureBinning,
        woe: &HostFeatureWoe,
    ) -> Result<Self, TransformError> {
        let values = woe.woe.clone().ok_or_else(|| {
            TransformError::InvalidParams(format!(
                "feature '{}': the guest did not send its WOE to this host (the WOE \
                 component's send_woe_to_host is off), so the host cannot encode it",
                woe.name
            ))
        })?;
        Self::checked(binning, values)
    }

    fn checked(binning: FeatureBinning, woe: Vec<f64>) -> Result<Self, TransformError> {
        let column = WoeColumn {
            name: binning.feature.clone(),
            binning,
            woe,
        };
        column.check().map_err(TransformError::InvalidParams)?;
        Ok(WoeInput {
            binning: column.binning,
            woe: column.woe,
        })
    }
}

/// What a `woe` step holds for one column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WoeColumn {
    pub name: String,
    #[serde(with = "exact_binning")]
    pub binning: FeatureBinning,
    /// WOE per bin, `binning.n_bins()` values.
    #[serde(with = "exact::vec")]
    pub woe: Vec<f64>,
}

impl WoeColumn {
    fn check(&self) -> Result<(), String> {
        self.binning
            .validate()
            .map_err(|e| format!("column '{}': {e}", self.name))?;
        if self.woe.len() != self.binning.n_bins() {
            return Err(format!(
                "column '{}': {} WOE values for {} bins (the missing bin included)",
                self.name,
                self.woe.len(),
                self.binning.n_bins()
            ));
        }
        if let Some(b) = self.woe.iter().position(|w| !w.is_finite()) {
            return Err(format!(
                "column '{}': the WOE of bin {b} is {}",
                self.name, self.woe[b]
            ));
        }
        Ok(())
    }

    /// The WOE of every value's bin.
    fn encode(&self, values: &ColumnValues) -> Vec<f64> {
        let bins = match values {
            ColumnValues::Numeric(v) => self.binning.bin_numbers(v),
            ColumnValues::Text(v) => self.binning.bin_texts(v),
        };
        bins.into_iter().map(|b| self.woe[b as usize]).collect()
    }
}

fn fit_woe(
    step: usize,
    columns: Option<&[String]>,
    table: &Table,
    woe: Option<&[WoeInput]>,
) -> Result<FittedStep, TransformError> {
    let err = |reason: String| TransformError::Woe { step, reason };
    let woe = woe.ok_or_else(|| {
        err(
            "no binning and WOE were given: a woe step needs the result of the binning and \
             WOE components for its columns"
                .into(),
        )
    })?;
    let by_feature: HashMap<&str, &WoeInput> = woe
        .iter()
        .map(|w| (w.binning.feature.as_str(), w))
        .collect();
    let names: Vec<&str> = match columns {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => table
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| by_feature.contains_key(n))
            .collect(),
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        find(step, "woe", table, name)?;
        let input = by_feature.get(name).ok_or_else(|| {
            err(format!(
                "column '{name}' has no binning and WOE (features with one: {})",
                woe.iter()
                    .map(|w| w.binning.feature.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let column = WoeColumn {
            name: name.to_string(),
            binning: input.binning.clone(),
            woe: input.woe.clone(),
        };
        column.check().map_err(err)?;
        out.push(column);
    }
    Ok(FittedStep::Woe { columns: out })
}

// ---------------------------------------------------------------------------------------------
// Exact numbers in JSON

/// `f64` written as a string in Rust's shortest round-trip notation and read back with Rust's
/// correctly rounded parser, so a stored value comes back bit for bit. Plain JSON numbers are
/// accepted when reading (hand-written files).
mod exact {
    use serde::de::{self, Deserializer, Visitor};
    use serde::{Deserialize, Serialize, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(ExactVisitor)
    }

    struct ExactVisitor;

    impl Visitor<'_> for ExactVisitor {
        type Value = f64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number, or a number written as a string")
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            v.trim()
                .parse::<f64>()
                .map_err(|_| E::custom(format!("'{v}' is not a number")))
        }
    }

    /// One exact number, for lists.
    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct Exact(#[serde(with = "crate::transform::exact")] f64);

    pub mod vec {
        use super::Exact;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|&x| Exact(x)))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            Ok(Vec::<Exact>::deserialize(d)?
                .into_iter()
                .map(|e| e.0)
                .collect())
        }
    }
}

/// A [`FeatureBinning`] with its edges written exactly (see [`exact`]); read back through
/// the binning's own checked constructors.
mod exact_binning {
    use crate::binning::{Bins, FeatureBinning};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case", deny_unknown_fields)]
    enum StoredBins {
        Numeric {
            #[serde(with = "super::exact::vec")]
            upper_edges: Vec<f64>,
        },
        Categorical {
            groups: Vec<Vec<String>>,
            other: Option<usize>,
        },
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StoredBinning {
        feature: String,
        bins: StoredBins,
    }

    pub fn serialize<S: Serializer>(b: &FeatureBinning, s: S) -> Result<S::Ok, S::Error> {
        let bins = match &b.bins {
            Bins::Numeric { upper_edges } => StoredBins::Numeric {
                upper_edges: upper_edges.clone(),
            },
            Bins::Categorical { groups, other } => StoredBins::Categorical {
                groups: groups.clone(),
                other: *other,
            },
        };
        StoredBinning {
            feature: b.feature.clone(),
            bins,
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FeatureBinning, D::Error> {
        let stored = StoredBinning::deserialize(d)?;
        match stored.bins {
            StoredBins::Numeric { upper_edges } => {
                FeatureBinning::numeric(&stored.feature, upper_edges)
            }
            StoredBins::Categorical { groups, other } => {
                FeatureBinning::categorical(&stored.feature, groups, other)
            }
        }
        .map_err(serde::de::Error::custom)
    }
}
