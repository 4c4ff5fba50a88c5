//! The run's responses (and acknowledged idempotency keys), streamed to disk as they arrive:
//! [`ResponseLog`] appends each [`ResponseRecord`] as one JSON line (the `responses.jsonl` line
//! format) through a buffer flushed at least once a second while records arrive, when a reader
//! starts and at the end, so a killed run leaves what it recorded. Readers stream the file again
//! from its start ([`ResponseLog::iter`]); nothing keeps every record in memory.
//!
//! A run's log lives in its report directory (`Evidence::stream_to`); hand-built evidence (tests)
//! gets a temporary file, made at the first push and removed with the log.
//!
//! Errors: a write error is kept (the first one) and later pushes are dropped; a read error (the
//! file vanished, a line that does not parse) ends the reading and is kept too. Either is what
//! [`ResponseLog::error`] returns: the judge turns it into a failed verdict
//! ("evidence unreadable: …") rather than judging on part of the evidence silently.

use super::data::ResponseRecord;
use serde::Serialize;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buffered records are written out at least this often while records arrive.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// An append-only file of JSON lines, flushed regularly.
#[derive(Default)]
struct Appender {
    /// Where the lines go; `None` until the first push of a log made by `Default`.
    path: Option<PathBuf>,
    /// The temporary file behind a `Default` log (removed on drop).
    temp: Option<tempfile::TempPath>,
    writer: Option<BufWriter<File>>,
    last_flush: Option<Instant>,
    lines: u64,
    error: Option<String>,
}

impl Appender {
    fn create(path: &Path) -> std::io::Result<Appender> {
        let file = File::create(path)?;
        Ok(Appender {
            path: Some(path.to_path_buf()),
            writer: Some(BufWriter::with_capacity(64 * 1024, file)),
            last_flush: Some(Instant::now()),
            ..Appender::default()
        })
    }

    fn fail(&mut self, what: String) {
        if self.error.is_none() {
            tracing::error!(%what, "evidence log");
            self.error = Some(what);
        }
        self.writer = None;
    }

    fn ensure_open(&mut self) -> bool {
        if self.writer.is_some() {
            return true;
        }
        if self.error.is_some() || self.path.is_some() {
            return false;
        }
        match tempfile::NamedTempFile::new() {
            Ok(t) => {
                let (file, path) = t.into_parts();
                self.path = Some(path.to_path_buf());
                self.temp = Some(path);
                self.writer = Some(BufWriter::new(file));
                self.last_flush = Some(Instant::now());
                true
            }
            Err(e) => {
                self.fail(format!("cannot create a temporary evidence file: {e}"));
                false
            }
        }
    }

    fn push_line(&mut self, write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) {
        if !self.ensure_open() {
            return;
        }
        let w = self.writer.as_mut().expect("opened above");
        if let Err(e) = write(w).and_then(|()| w.write_all(b"\n")) {
            let at = self.path_text();
            self.fail(format!("cannot write {at}: {e}"));
            return;
        }
        self.lines += 1;
        if self.last_flush.is_none_or(|t| t.elapsed() >= FLUSH_EVERY) {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.flush() {
                let at = self.path_text();
                self.fail(format!("cannot write {at}: {e}"));
            }
        }
        self.last_flush = Some(Instant::now());
    }

    fn path_text(&self) -> String {
        self.path
            .as_ref()
            .map_or("(no file)".into(), |p| p.display().to_string())
    }

    /// Flushes and opens the file for reading from `offset` (`None`: nothing was written).
    fn reader(&mut self, offset: u64) -> Result<Option<BufReader<File>>, String> {
        self.flush();
        let Some(path) = self.path.clone() else {
            return Ok(None);
        };
        let open = || -> std::io::Result<BufReader<File>> {
            let mut f = File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            Ok(BufReader::with_capacity(64 * 1024, f))
        };
        open()
            .map(Some)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

/// Reads one kind of line back from an [`Appender`]'s file.
struct Lines<'a> {
    reader: Option<BufReader<File>>,
    line: String,
    position: u64,
    line_no: u64,
    errors: &'a Mutex<Appender>,
}

impl Lines<'_> {
    fn open(log: &Mutex<Appender>, offset: u64) -> Lines<'_> {
        let mut a = log.lock().expect("evidence log lock");
        let reader = match a.reader(offset) {
            Ok(r) => r,
            Err(e) => {
                a.fail(e);
                None
            }
        };
        Lines {
            reader,
            line: String::new(),
            position: offset,
            line_no: 0,
            errors: log,
        }
    }

    fn fail(&mut self, what: String) {
        self.reader = None;
        let mut a = self.errors.lock().expect("evidence log lock");
        if a.error.is_none() {
            tracing::error!(%what, "evidence log");
            a.error = Some(what);
        }
    }

    /// The next complete line, parsed by `parse`.
    fn next_with<T>(&mut self, parse: impl FnOnce(&str) -> serde_json::Result<T>) -> Option<T> {
        let reader = self.reader.as_mut()?;
        self.line.clear();
        match reader.read_line(&mut self.line) {
            Ok(0) => {
                self.reader = None;
                None
            }
            // A line still being written (only a reader racing a writer outside the lock): leave
            // it for the next read.
            Ok(_) if !self.line.ends_with('\n') => {
                self.reader = None;
                None
            }
            Ok(n) => {
                self.line_no += 1;
                match parse(self.line.trim_end()) {
                    Ok(v) => {
                        self.position += n as u64;
                        Some(v)
                    }
                    Err(e) => {
                        let what =
                            format!("line {} after byte {}: {e}", self.line_no, self.position);
                        self.fail(what);
                        None
                    }
                }
            }
            Err(e) => {
                self.fail(format!("cannot read the evidence file: {e}"));
                None
            }
        }
    }
}

/// Every response of a run, on disk: append with [`push`](ResponseLog::push), read back with
/// [`iter`](ResponseLog::iter) (from the start, owned records) as often as needed.
#[derive(Default)]
pub struct ResponseLog {
    file: Mutex<Appender>,
}

impl std::fmt::Debug for ResponseLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.file.lock().expect("evidence log lock");
        f.debug_struct("ResponseLog")
            .field("path", &a.path)
            .field("len", &a.lines)
            .finish()
    }
}

impl ResponseLog {
    /// A log writing to `path` (created, or truncated).
    pub fn create(path: &Path) -> std::io::Result<ResponseLog> {
        Ok(ResponseLog {
            file: Mutex::new(Appender::create(path)?),
        })
    }

    /// Appends one record (one JSON line); written out within [`FLUSH_EVERY`] of the next push.
    pub fn push(&mut self, r: ResponseRecord) {
        self.file
            .get_mut()
            .expect("evidence log lock")
            .push_line(|w| serde_json::to_writer(w, &r).map_err(std::io::Error::from));
    }

    /// How many records were pushed.
    pub fn len(&self) -> usize {
        self.file.lock().expect("evidence log lock").lines as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every record, in the order pushed, read from the file (which is flushed first).
    pub fn iter(&self) -> Responses<'_> {
        self.iter_from(0)
    }

    /// The records from byte `offset` of the file on (a [`Responses::position`] of an earlier
    /// reading): what was pushed since.
    pub fn iter_from(&self, offset: u64) -> Responses<'_> {
        Responses {
            lines: Lines::open(&self.file, offset),
        }
    }

    /// Writes anything buffered out to the file.
    pub fn flush(&self) {
        self.file.lock().expect("evidence log lock").flush();
    }

    /// The file the records go to (`None`: a default log nothing was pushed to).
    pub fn path(&self) -> Option<PathBuf> {
        self.file.lock().expect("evidence log lock").path.clone()
    }

    /// The first write or read error, if any: the log does not hold every record.
    pub fn error(&self) -> Option<String> {
        self.file.lock().expect("evidence log lock").error.clone()
    }

    /// Writes every record to `to` (the same lines), unless `to` is the log's own file.
    pub fn copy_to(&self, to: &Path) -> std::io::Result<()> {
        self.flush();
        match self.path() {
            Some(from) if same_file(&from, to) => Ok(()),
            Some(from) => std::fs::copy(from, to).map(|_| ()),
            None => std::fs::write(to, b""),
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// A log of these records (in a temporary file): hand-built evidence.
impl FromIterator<ResponseRecord> for ResponseLog {
    fn from_iter<I: IntoIterator<Item = ResponseRecord>>(rs: I) -> ResponseLog {
        let mut log = ResponseLog::default();
        for r in rs {
            log.push(r);
        }
        log
    }
}

impl Serialize for ResponseLog {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// Records read back from a [`ResponseLog`]; stops at the end or at the first error (kept in
/// the log, see [`ResponseLog::error`]).
pub struct Responses<'a> {
    lines: Lines<'a>,
}

impl Responses<'_> {
    /// Bytes of the file read so far, to continue from with [`ResponseLog::iter_from`].
    pub fn position(&self) -> u64 {
        self.lines.position
    }
}

impl Iterator for Responses<'_> {
    type Item = ResponseRecord;

    fn next(&mut self) -> Option<ResponseRecord> {
        self.lines.next_with(|l| serde_json::from_str(l))
    }
}

/// The idempotency keys of acknowledged (2xx) requests, on disk (one JSON string a line), for
/// the data-integrity check after the load.
#[derive(Default)]
pub struct KeyLog {
    file: Mutex<Appender>,
}

impl std::fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLog").field("len", &self.len()).finish()
    }
}

impl KeyLog {
    pub fn create(path: &Path) -> std::io::Result<KeyLog> {
        Ok(KeyLog {
            file: Mutex::new(Appender::create(path)?),
        })
    }

    pub fn push(&mut self, key: &str) {
        self.file
            .get_mut()
            .expect("evidence log lock")
            .push_line(|w| serde_json::to_writer(w, key).map_err(std::io::Error::from));
    }

    pub fn len(&self) -> usize {
        self.file.lock().expect("evidence log lock").lines as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every key, in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = String> + '_ {
        let mut lines = Lines::open(&self.file, 0);
        std::iter::from_fn(move || lines.next_with(|l| serde_json::from_str(l)))
    }

    /// The first write or read error, if any.
    pub fn error(&self) -> Option<String> {
        self.file.lock().expect("evidence log lock").error.clone()
    }

    /// Every key, read by a reader of its own (it does not borrow the log: it can outlive a lock
    /// on the evidence, e.g. across the integrity check's database queries).
    pub fn reader(&self) -> KeyReader {
        let mut a = self.file.lock().expect("evidence log lock");
        let error = a.error.clone();
        match a.reader(0) {
            Ok(reader) => KeyReader {
                reader,
                line: String::new(),
                error,
            },
            Err(e) => KeyReader {
                reader: None,
                line: String::new(),
                error: Some(e),
            },
        }
    }
}

/// The keys of a [`KeyLog`], read from its file; stops at the first error ([`KeyReader::error`]).
pub struct KeyReader {
    reader: Option<BufReader<File>>,
    line: String,
    error: Option<String>,
}

impl KeyReader {
    /// Why not every key was read (a write or read error), if so.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl Iterator for KeyReader {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let reader = self.reader.as_mut()?;
        self.line.clear();
        let read = match reader.read_line(&mut self.line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(self.line.trim_end()).map_err(|e| e.to_string())),
            Err(e) => Some(Err(e.to_string())),
        };
        match read {
            Some(Ok(k)) => Some(k),
            Some(Err(e)) => {
                self.error
                    .get_or_insert(format!("acknowledged keys unreadable: {e}"));
                self.reader = None;
                None
            }
            None => {
                self.reader = None;
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "responses_tests.rs"]
mod tests;
