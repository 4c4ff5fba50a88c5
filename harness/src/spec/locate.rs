//! Where a value sits in a TOML file, by its key path (`services[0].liveness.period`), so that
//! checks made after deserializing still name file:line:col. Built on `toml_edit`, which keeps the
//! span of every key and value.

use crate::error::BrownoutError;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml_edit::{ImDocument, Item};

/// One step of a key path.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> From<&'a str> for Seg<'a> {
    fn from(k: &'a str) -> Self {
        Seg::Key(k)
    }
}

impl From<usize> for Seg<'_> {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// Builds a key path: `path!["services", 0, "liveness", "period"]`.
#[macro_export]
macro_rules! key_path {
    ($($seg:expr),* $(,)?) => {
        &[$($crate::spec::locate::Seg::from($seg)),*][..]
    };
}

/// A parsed file that can say where each value is.
pub struct Locator {
    path: PathBuf,
    text: String,
    doc: Option<ImDocument<String>>,
}

impl Locator {
    pub fn new(path: &Path, text: &str) -> Locator {
        Locator {
            path: path.to_path_buf(),
            text: text.to_string(),
            doc: ImDocument::parse(text.to_string()).ok(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The span of the value at `keys`, or of the deepest part of the path that exists (a
    /// defaulted field is located at its table).
    pub fn span(&self, keys: &[Seg]) -> Range<usize> {
        let Some(doc) = &self.doc else {
            return 0..0;
        };
        let mut item: &Item = doc.as_item();
        let mut best = 0..0;
        for seg in keys {
            let next = match seg {
                Seg::Key(k) => item.get(k),
                Seg::Index(i) => item.get(*i),
            };
            let Some(next) = next else { break };
            item = next;
            if let Some(s) = span_of(item) {
                best = s;
            }
        }
        best
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(before.chars().count(), |nl| {
            before[nl + 1..].chars().count()
        }) + 1;
        (line, col)
    }

    /// A bad-input error at a byte span.
    pub fn at_span(&self, span: Range<usize>, msg: impl std::fmt::Display) -> BrownoutError {
        let (line, col) = self.line_col(span.start);
        BrownoutError::BadInput(format!("{}:{line}:{col}: {msg}", self.path.display()))
    }

    /// A bad-input error at the value of a key path.
    pub fn at(&self, keys: &[Seg], msg: impl std::fmt::Display) -> BrownoutError {
        self.at_span(self.span(keys), msg)
    }
}

fn span_of(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::None => None,
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span().or_else(|| a.get(0).and_then(|t| t.span())),
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name = \"x\"\n\n[[services]]\nname = \"a\"\n\n[[services]]\nname = \"b\"\nliveness = { path = \"/l\", period = \"0s\" }\n";

    #[test]
    fn a_nested_value_is_located_by_its_key_path() {
        let l = Locator::new(Path::new("s.toml"), TEXT);
        let e = l.at(key_path!["services", 1, "liveness", "period"], "bad");
        assert_eq!(e.to_string(), "s.toml:8:36: bad");
        let e = l.at(key_path!["services", 0, "name"], "bad");
        assert_eq!(e.to_string(), "s.toml:4:8: bad");
    }

    #[test]
    fn a_missing_key_is_located_at_its_deepest_existing_parent() {
        let l = Locator::new(Path::new("s.toml"), TEXT);
        let e = l.at(key_path!["services", 1, "liveness", "timeout"], "bad");
        assert_eq!(e.to_string(), "s.toml:8:12: bad");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let l = Locator::new(Path::new("s.toml"), "summary = \"é\"\nname = 1\n");
        assert_eq!(l.line_col(l.span(key_path!["name"]).start), (2, 8));
        let l = Locator::new(Path::new("s.toml"), "a = \"éé\", b");
        assert_eq!(l.line_col(9), (1, 8));
    }
}
