//! Plain-text tables for the CLI: every column as wide as its widest cell, so long dataset
//! and job names do not push the columns out of line.

/// A column's heading and whether its cells are right-aligned (numbers).
pub struct Column {
    pub heading: &'static str,
    pub right: bool,
}

pub const fn left(heading: &'static str) -> Column {
    Column {
        heading,
        right: false,
    }
}

pub const fn right(heading: &'static str) -> Column {
    Column {
        heading,
        right: true,
    }
}

/// Lays out `rows` under `columns`, each line prefixed by `indent`. The last column is not
/// padded (it often holds free text such as a reason).
pub fn render(indent: &str, columns: &[Column], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.heading.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut out = String::from(indent);
        for (i, (cell, (col, &w))) in cells.zip(columns.iter().zip(&widths)).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = w.saturating_sub(cell.chars().count());
            let last = i + 1 == columns.len();
            if col.right {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if !last {
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        out.truncate(out.trim_end().len());
        out
    };
    let mut text = line(&mut columns.iter().map(|c| c.heading));
    text.push('\n');
    for row in rows {
        text.push_str(&line(&mut row.iter().map(String::as_str)));
        text.push('\n');
    }
    text
}

/// One row per element of the JSON array `list` (none when it is not an array).
pub fn rows(
    list: &serde_json::Value,
    row: impl Fn(&serde_json::Value) -> Vec<String>,
) -> Vec<Vec<String>> {
    list.as_array().into_iter().flatten().map(row).collect()
}

/// Prints [`render`]'s table.
pub fn print(indent: &str, columns: &[Column], rows: &[Vec<String>]) {
    print!("{}", render(indent, columns, rows));
}

/// A JSON value as a table cell: strings without quotes, null as nothing.
pub fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A JSON number as a table cell: integers without a fraction, others to 4 places.
pub fn number(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => format!("{x:.4}"),
        None => text(v),
    }
}

/// Prints what the API answered, for `--json`.
pub fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell_and_numbers_align_right() {
        let text = render(
            "",
            &[left("name"), right("rows"), left("reason")],
            &[
                vec!["a-very-long-dataset-name".into(), "5".into(), "".into()],
                vec!["b".into(), "12345".into(), "why not".into()],
            ],
        );
        assert_eq!(
            text,
            "name                       rows  reason\n\
             a-very-long-dataset-name      5\n\
             b                         12345  why not\n"
        );
    }
}
