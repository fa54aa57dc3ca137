//! Rendering reports as human tables and CSV, through the [`Report`] trait.

use comfy_table::{presets, CellAlignment, Table};

/// A report as rows of text cells, the common form of tables and CSV.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tabular {
    /// Column names.
    pub headers: Vec<String>,
    /// Which columns hold numbers (right-aligned in tables).
    pub numeric: Vec<bool>,
    /// The rows, one cell per column.
    pub rows: Vec<Vec<String>>,
}

impl Tabular {
    /// An empty tabular form with these columns; `numeric` marks right-aligned ones.
    pub fn new(columns: &[(&str, bool)]) -> Tabular {
        Tabular {
            headers: columns.iter().map(|(h, _)| h.to_string()).collect(),
            numeric: columns.iter().map(|(_, n)| *n).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a column after the existing ones.
    pub fn push_column(&mut self, header: impl Into<String>, numeric: bool) {
        self.headers.push(header.into());
        self.numeric.push(numeric);
    }
}

/// What every report offers the CLI and the server: JSON, a human table and CSV, without the
/// caller knowing which report it holds (object safe: `Box<dyn Report>` works).
pub trait Report {
    /// The report's name (`flow`, `cohort`, ...).
    fn name(&self) -> &'static str;
    /// A one-line caption shown above the human table.
    fn title(&self) -> String;
    /// The JSON form (the contract shape).
    fn to_json(&self) -> String;
    /// The rows as a table: the human form (few, readable columns) when `human`, else the
    /// flat form for CSV (one value per column).
    fn tabular(&self, human: bool) -> Tabular;
    /// The human form: few, readable columns.
    fn human(&self) -> Tabular {
        self.tabular(true)
    }
    /// The flat form for CSV: one value per column.
    fn flat(&self) -> Tabular {
        self.tabular(false)
    }
    /// The aligned human table.
    fn to_table(&self) -> String {
        table(self)
    }
    /// The CSV text (RFC 4180).
    fn to_csv(&self) -> String {
        csv(self)
    }
}

/// Renders a report as an aligned human table with a caption line.
pub fn table(report: &(impl Report + ?Sized)) -> String {
    table_of(&report.title(), &report.human())
}

/// Renders one captioned table (`(no rows)` when empty): the building block of reports with
/// several sections.
pub fn table_of(title: &str, t: &Tabular) -> String {
    let mut out = title.to_string();
    out.push('\n');
    if t.rows.is_empty() {
        out.push_str("(no rows)\n");
        return out;
    }
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(t.headers.clone());
    for row in &t.rows {
        table.add_row(row.clone());
    }
    for (i, &numeric) in t.numeric.iter().enumerate() {
        if numeric {
            if let Some(c) = table.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    out.push_str(&table.to_string());
    out.push('\n');
    out
}

/// Renders a report as CSV (RFC 4180: CRLF line ends, fields quoted when needed).
pub fn csv(report: &(impl Report + ?Sized)) -> String {
    let t = report.flat();
    let mut out = String::new();
    write_record(&mut out, &t.headers);
    for row in &t.rows {
        write_record(&mut out, row);
    }
    out
}

fn write_record(out: &mut String, fields: &[String]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push_str("\r\n");
}

/// A segment cell: the label, `(none)` for null in tables.
pub(crate) fn segment_cell(segment: &Option<Option<String>>, human: bool) -> String {
    match segment {
        Some(Some(s)) => s.clone(),
        Some(None) if human => "(none)".into(),
        _ => String::new(),
    }
}

/// Days with one decimal and a `d` suffix for tables.
pub(crate) fn days_cell(d: Option<f64>) -> String {
    match d {
        Some(d) if d.is_finite() => format!("{d:.1}d"),
        _ => "-".into(),
    }
}

/// A share as a whole percentage.
pub(crate) fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.0}%", n as f64 * 100.0 / of as f64)
    }
}

/// An optional float as plain text (empty when absent).
pub(crate) fn num(d: Option<f64>) -> String {
    match d {
        Some(d) if d.is_finite() => d.to_string(),
        _ => String::new(),
    }
}

/// A sort key for segments with `null` last.
pub(crate) fn segment_order(segment: &Option<Option<String>>) -> (bool, Option<&str>) {
    match segment {
        Some(Some(s)) => (false, Some(s.as_str())),
        Some(None) => (true, None),
        None => (false, None),
    }
}
