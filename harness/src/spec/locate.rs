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

    /// Whether the file writes the value at `keys` (an empty list written is there; a defaulted
    /// field is not).
    pub fn has(&self, keys: &[Seg]) -> bool {
        let Some(doc) = &self.doc else {
            return false;
        };
        let mut item: &Item = doc.as_item();
        for seg in keys {
            let next = match seg {
                Seg::Key(k) => item.get(k),
                Seg::Index(i) => item.get(*i),
            };
            match next {
                Some(next) if !next.is_none() => item = next,
                _ => return false,
            }
        }
        true
    }

    /// The span of the one string value equal to `value` inside `within` (none, or more than
    /// one: `None`). A value inside a fault's `{ kind = … }` table is deserialized through the
    /// kind's tag, which loses its span: its error is at the table; this finds the value it is
    /// about, so the error can point there.
    pub fn string_within(&self, within: &Range<usize>, value: &str) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut found = Vec::new();
        strings_in_item(doc.as_item(), within, value, &mut found);
        (found.len() == 1).then(|| found.remove(0))
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

fn strings_in_item(item: &Item, within: &Range<usize>, value: &str, out: &mut Vec<Range<usize>>) {
    match item {
        Item::None => {}
        Item::Value(v) => strings_in_value(v, within, value, out),
        Item::Table(t) => t
            .iter()
            .for_each(|(_, i)| strings_in_item(i, within, value, out)),
        Item::ArrayOfTables(a) => a.iter().for_each(|t| {
            t.iter()
                .for_each(|(_, i)| strings_in_item(i, within, value, out))
        }),
    }
}

fn strings_in_value(
    v: &toml_edit::Value,
    within: &Range<usize>,
    value: &str,
    out: &mut Vec<Range<usize>>,
) {
    match v {
        toml_edit::Value::String(s) => {
            if let Some(span) = s.span() {
                if s.value() == value && within.start <= span.start && span.end <= within.end {
                    out.push(span);
                }
            }
        }
        toml_edit::Value::Array(a) => a
            .iter()
            .for_each(|v| strings_in_value(v, within, value, out)),
        toml_edit::Value::InlineTable(t) => t
            .iter()
            .for_each(|(_, v)| strings_in_value(v, within, value, out)),
        _ => {}
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
    fn a_string_inside_a_span_is_found_when_it_is_the_only_one() {
        let text = "a = \"x\"\nf = { k = \"m\", limit = \"512M\", other = \"x\" }\n";
        let l = Locator::new(Path::new("s.toml"), text);
        let table = l.span(key_path!["f"]);
        let at = l.string_within(&table, "512M").unwrap();
        assert_eq!(l.line_col(at.start), (2, 24));
        // Not in the span, or not only one: nothing.
        assert_eq!(l.string_within(&(0..3), "512M"), None);
        assert_eq!(l.string_within(&(0..text.len()), "x"), None);
    }

    #[test]
    fn a_written_value_is_told_from_a_missing_one() {
        let l = Locator::new(Path::new("s.toml"), "a = []\n[[b]]\nc = 1\n");
        assert!(l.has(key_path!["a"]));
        assert!(l.has(key_path!["b", 0, "c"]));
        assert!(!l.has(key_path!["b", 0, "d"]));
        assert!(!l.has(key_path!["b", 1]));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let l = Locator::new(Path::new("s.toml"), "summary = \"é\"\nname = 1\n");
        assert_eq!(l.line_col(l.span(key_path!["name"]).start), (2, 8));
        let l = Locator::new(Path::new("s.toml"), "a = \"éé\", b");
        assert_eq!(l.line_col(9), (1, 8));
    }
}
