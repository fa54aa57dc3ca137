//! Diagnostics: every problem the checker found, located in the model file.

use std::fmt;

use crate::Span;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The model works, but probably not as intended.
    Warning,
    /// The model cannot be loaded.
    Error,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// One problem in a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable short code naming the check (`unknown-stage`), documented in `docs/model.md`.
    pub code: &'static str,
    /// What is wrong, one sentence without a trailing period.
    pub message: String,
    /// Byte range in the file.
    pub span: Span,
    /// 1-based line of the span's start.
    pub line: usize,
    /// 1-based column (in characters) of the span's start.
    pub column: usize,
    /// The text of the line the span starts on.
    pub snippet: String,
    /// How to fix it, if we know.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Warning => miette::Severity::Warning,
            Severity::Error => miette::Severity::Error,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let len = self.span.end.saturating_sub(self.span.start);
        Some(Box::new(std::iter::once(miette::LabeledSpan::new(
            Some("here".into()),
            self.span.start,
            len,
        ))))
    }
}

/// Options for [`Diagnostics::render_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    /// Use ANSI colours.
    pub color: bool,
}

/// Every problem found in one model file, in file order; the error type of [`crate::load`].
///
/// Implements [`miette::Diagnostic`] (the file is the source code, each problem a related
/// diagnostic), or print [`Diagnostics::render`] for plain text.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The file name, as given to [`crate::load`].
    pub file: String,
    /// Errors and warnings, ordered by position.
    pub items: Vec<Diagnostic>,
    source: miette::NamedSource<String>,
}

impl Diagnostics {
    pub(crate) fn new(file: &str, text: &str) -> Diagnostics {
        Diagnostics {
            file: file.to_string(),
            items: Vec::new(),
            source: miette::NamedSource::new(file, text.to_string()),
        }
    }

    pub(crate) fn from_items(file: &str, text: &str, items: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics {
            items,
            ..Diagnostics::new(file, text)
        }
    }

    fn text(&self) -> &str {
        self.source.inner()
    }

    /// Adds a problem at `span` (clamped to the text and to character boundaries).
    pub(crate) fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let text = self.source.inner();
        let mut start = span.start.min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = span.end.clamp(start, text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let snippet = text[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        self.items.push(Diagnostic {
            severity,
            code,
            message: message.into(),
            span: start..end,
            line,
            column,
            snippet,
            hint,
        });
    }

    /// Adds an error.
    pub(crate) fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, code, span, message, hint);
    }

    /// Adds a warning.
    pub(crate) fn warning(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Warning, code, span, message, hint);
    }

    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    pub(crate) fn sort(&mut self) {
        self.items.sort_by_key(|d| (d.span.start, d.span.end));
        self.items.dedup();
    }

    /// Plain text, no colours: every problem with `file:line:column`, the line, a caret
    /// under the offending text and the hint, then a summary line.
    pub fn render(&self) -> String {
        self.render_with(RenderOptions::default())
    }

    /// Renders every problem, optionally with ANSI colours.
    pub fn render_with(&self, options: RenderOptions) -> String {
        use std::fmt::Write;
        let paint = |code: &str, s: &str| {
            if options.color {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_string()
            }
        };
        let mut out = String::new();
        for d in &self.items {
            let (sev_color, label) = match d.severity {
                Severity::Error => ("1;31", "error"),
                Severity::Warning => ("1;33", "warning"),
            };
            let _ = writeln!(
                out,
                "{}: {}",
                paint(sev_color, &format!("{label}[{}]", d.code)),
                paint("1", &d.message)
            );
            let gutter = d.line.to_string().len();
            let pad = " ".repeat(gutter);
            let _ = writeln!(out, "{pad}--> {}:{}:{}", self.file, d.line, d.column);
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{} | {}", d.line, d.snippet);
            let line_chars = d.snippet.chars().count();
            let span_chars = self.text()[d.span.clone()].chars().count().max(1);
            let width = span_chars.min(line_chars.saturating_sub(d.column - 1).max(1));
            let _ = writeln!(
                out,
                "{pad} | {}{}",
                " ".repeat(d.column - 1),
                paint(sev_color, &"^".repeat(width))
            );
            if let Some(h) = &d.hint {
                let _ = writeln!(out, "{pad} = hint: {h}");
            }
            out.push('\n');
        }
        let errors = self.errors().count();
        let warnings = self.items.len() - errors;
        let _ = writeln!(
            out,
            "{}: {} error{}, {} warning{}",
            self.file,
            errors,
            if errors == 1 { "" } else { "s" },
            warnings,
            if warnings == 1 { "" } else { "s" }
        );
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.errors().count();
        write!(
            f,
            "{}: {} problem{} in the model",
            self.file,
            errors,
            if errors == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

impl miette::Diagnostic for Diagnostics {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        Some(Box::new(
            self.items.iter().map(|d| d as &dyn miette::Diagnostic),
        ))
    }
}

impl Severity {
    /// `error` or `warning`.
    pub fn name(self) -> &'static str {
        self.as_str()
    }
}
