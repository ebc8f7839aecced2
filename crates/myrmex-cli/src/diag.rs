//! Problems found in a file, printed the way rustc and cargo print them:
//!
//! ```text
//! error: unknown key `comand` in job `backup`
//!   --> myrmex.toml:12:1
//!    |
//! 12 | comand = "tar czf /backup/home.tgz /home"
//!    | ^^^^^^ unknown key
//!    |
//!    = help: did you mean `command`?
//! ```

use std::fmt::Write as _;
use std::ops::Range;

/// One problem in a source file, located by a byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, a lowercase fragment.
    pub message: String,
    /// Where, as a byte range into the source (`None`: the file as a whole).
    pub span: Option<Range<usize>>,
    /// A short label printed after the carets.
    pub label: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A problem at `span`.
    pub fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            label: None,
            help: None,
        }
    }

    /// Adds a label printed under the offending text.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a hint.
    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The 1-based line and column (in characters) where the problem starts.
    #[cfg(test)]
    pub fn line_col(&self, src: &str) -> Option<(usize, usize)> {
        self.span.as_ref().map(|s| line_col(src, s.start))
    }
}

/// The 1-based line and character column of byte `offset` in `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(src, offset.min(src.len()));
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = src[line_start..offset].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Renders `diags` against `src` (named `file` in the output), each followed by a
/// blank line, in the style of rustc.
pub fn render(file: &str, src: &str, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        render_one(&mut out, file, src, d);
        out.push('\n');
    }
    out
}

fn render_one(out: &mut String, file: &str, src: &str, d: &Diagnostic) {
    let _ = writeln!(out, "error: {}", d.message);
    let Some(span) = &d.span else {
        let _ = writeln!(out, "  --> {file}");
        if let Some(help) = &d.help {
            let _ = writeln!(out, "   = help: {help}");
        }
        return;
    };
    let start = floor_char_boundary(src, span.start.min(src.len()));
    let (line, col) = line_col(src, start);
    let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
    let text = src[line_start..line_end].trim_end_matches('\r');
    let gutter = line.to_string().len();
    let pad = " ".repeat(gutter);
    let _ = writeln!(out, "{pad}--> {file}:{line}:{col}");
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{line} | {}", text.replace('\t', " "));
    // The carets cover the span as far as it stays on the first line, at least one.
    let end = span.end.clamp(start, line_start + text.len());
    let width = src[start..floor_char_boundary(src, end)]
        .chars()
        .count()
        .max(1);
    let _ = write!(out, "{pad} | {}{}", " ".repeat(col - 1), "^".repeat(width));
    match &d.label {
        Some(label) => {
            let _ = writeln!(out, " {label}");
        }
        None => out.push('\n'),
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{pad} = help: {help}");
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a
/// plausible typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_line_column_and_caret() {
        let src = "[scheduler]\nzone = \"Mars/Olympus\"\n";
        let start = src.find('"').unwrap();
        let d = Diagnostic::new("unknown time zone `Mars/Olympus`", Some(start..start + 14))
            .label("not in the time zone database")
            .help("use an IANA name such as `Europe/Paris` or `UTC`");
        let got = render("myrmex.toml", src, &[d]);
        let want = "error: unknown time zone `Mars/Olympus`
 --> myrmex.toml:2:8
  |
2 | zone = \"Mars/Olympus\"
  |        ^^^^^^^^^^^^^^ not in the time zone database
  |
  = help: use an IANA name such as `Europe/Paris` or `UTC`

";
        assert_eq!(got, want);
    }

    #[test]
    fn line_col_counts_characters() {
        let src = "a = \"é\"\nb = 1";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, src.find('b').unwrap()), (2, 1));
        assert_eq!(line_col(src, src.find('"').unwrap() + 3), (1, 7));
    }

    #[test]
    fn suggests_close_names_only() {
        let keys = ["command", "cron", "every", "timeout"];
        assert_eq!(did_you_mean("comand", &keys), Some("command"));
        assert_eq!(did_you_mean("timeot", &keys), Some("timeout"));
        assert_eq!(did_you_mean("zzzzzz", &keys), None);
    }
}
