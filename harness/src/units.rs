//! Units as written in scenario, system and game-day files and on the fault proxy's wire: durations
//! ("30s", "500ms", "1m30s") and sizes ("16MiB"), parsed when the text is read so code after it
//! holds a [`Duration`] or a byte count, never the text. Imports nothing from the crate.

use serde::Deserialize;
use std::time::Duration;

/// A duration as written in a file ("30s", "500ms", "1m30s"), parsed when the file is read: code
/// after validation holds a [`Duration`], never the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    pub fn get(self) -> Duration {
        self.0
    }
    pub fn ms(self) -> u64 {
        self.0.as_millis() as u64
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// Written back as the file would say it ("300ms", "6s").
impl serde::Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A size as written in a file ("16MiB"), parsed when the file is read (in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_size(&text)
            .map(Size)
            .map_err(serde::de::Error::custom)
    }
}

/// A memory size as written in a file ("64MiB", "2Gi"), parsed when the file is read (in bytes):
/// a memory limit, with its own units and range ([`parse_memory`]), not a volume's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemSize(pub u64);

impl<'de> Deserialize<'de> for MemSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_memory(&text)
            .map(MemSize)
            .map_err(serde::de::Error::custom)
    }
}

/// The smallest memory limit: below a few MiB no process starts at all.
pub const MIN_MEMORY_BYTES: u64 = 8 << 20;
/// The largest memory limit: a static bound (the machine's memory is not known when a file is
/// validated) well above any service's, 1 TiB.
pub const MAX_MEMORY_BYTES: u64 = 1 << 40;

/// Parses a memory size: a byte count, or binary units as Kubernetes quantities write them
/// ("Ki", "Mi", "Gi", "Ti") or as this harness does ("KiB", "MiB", "GiB", "TiB"), from
/// at most 2^64 - 1 (the range, [`MIN_MEMORY_BYTES`] to [`MAX_MEMORY_BYTES`], is the memory-limit
/// fault's check, located at its value: [`check_memory`]). Decimal and one-letter units ("512M", "2G",
/// "1MB") are refused: Kubernetes reads "M" as 10^6 bytes, a volume size here as 2^20, so the
/// same text would be two different limits. Both the local cgroup (`memory.max`, bytes) and a
/// container's limit (a quantity) take every value this accepts.
pub fn parse_memory(s: &str) -> std::result::Result<u64, String> {
    parse_binary(s).map_err(|e| match e {
        BinaryError::Ambiguous => format!("memory size '{s}' is ambiguous: Kubernetes reads M and G as powers of 10, this harness as powers of 2; write binary units, e.g. \"512MiB\" or \"2GiB\""),
        BinaryError::NotASize => format!("'{s}' is not a memory size; write it like \"64MiB\", \"2GiB\" (or \"64Mi\", \"2Gi\" as Kubernetes does)"),
        BinaryError::Overflow => format!("memory size '{s}' is out of range: give between \"8MiB\" and \"1TiB\""),
    })
}

/// Parses a size on disk (a cap or a floor for files the harness writes): a byte count, or binary
/// units as [`parse_memory`] takes them, with no range of its own (each caller checks its own).
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    parse_binary(s).map_err(|e| match e {
        BinaryError::Ambiguous => format!("size '{s}' is ambiguous (powers of 10 or of 2?); write binary units, e.g. \"512MiB\" or \"2GiB\""),
        BinaryError::NotASize => format!("'{s}' is not a size; write it like \"64MiB\" or \"2GiB\" (KiB, MiB, GiB, TiB or bytes)"),
        BinaryError::Overflow => format!("size '{s}' is out of range: it does not fit in 64 bits"),
    })
}

/// Why a text is not a size in binary units.
enum BinaryError {
    /// A decimal or one-letter unit ("512M", "2GB"): powers of 10 to some readers.
    Ambiguous,
    NotASize,
    Overflow,
}

/// A byte count, or one with a binary unit ("KiB"…"TiB", or Kubernetes' "Ki"…"Ti").
fn parse_binary(s: &str) -> std::result::Result<u64, BinaryError> {
    let t = s.trim();
    let units = [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    let (num, mult) = units
        .iter()
        .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n, *m)))
        .unwrap_or((t, 1));
    let Ok(n) = num.trim().parse::<u64>() else {
        let ambiguous = ["TB", "GB", "MB", "KB", "kB", "T", "G", "M", "K", "k"]
            .iter()
            .any(|u| {
                t.strip_suffix(u)
                    .is_some_and(|n| n.trim().parse::<u64>().is_ok())
            });
        return Err(if ambiguous {
            BinaryError::Ambiguous
        } else {
            BinaryError::NotASize
        });
    };
    n.checked_mul(mult).ok_or(BinaryError::Overflow)
}

/// A memory limit within [`MIN_MEMORY_BYTES`] and [`MAX_MEMORY_BYTES`].
pub fn check_memory(bytes: u64) -> std::result::Result<(), String> {
    if (MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&bytes) {
        Ok(())
    } else {
        Err(format!("memory limit of {bytes} bytes is out of range: give between \"8MiB\" and \"1TiB\" (a process needs a few MiB to start at all)"))
    }
}

/// Parses "30s", "500ms", "1m30s".
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("'{s}' is not a duration ({e}); write it like \"30s\", \"500ms\" or \"1m30s\"")
    })
}

/// The largest sized volume: a tmpfs lives in memory.
pub const MAX_VOLUME_BYTES: u64 = 1 << 30;

/// Parses "16MiB", "512KiB", "1GiB" or a plain byte count.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mult) = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ]
    .iter()
    .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n, *m)))
    .unwrap_or((t, 1));
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| (64 * 1024..=MAX_VOLUME_BYTES).contains(n))
        .ok_or_else(|| {
            format!("'{s}' is not a size from 64KiB to 1GiB (a sized volume is a tmpfs, held in memory); write it like \"16MiB\"")
        })
}

/// A duration within `[min, max]`.
pub fn check_duration(what: &str, d: Duration, min: Duration, max: Duration) -> Result<(), String> {
    if d < min || d > max {
        Err(format!(
            "{what} {} is out of range: between {} and {}",
            humantime::format_duration(d),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ))
    } else {
        Ok(())
    }
}

/// A number within `[min, max]`.
pub fn check_number<T: PartialOrd + std::fmt::Display>(
    what: &str,
    n: T,
    min: T,
    max: T,
) -> Result<(), String> {
    if n < min || n > max {
        Err(format!("{what} {n} is out of range: {min} to {max}"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_has_its_own_units_and_range() {
        // A 2 GiB memory limit is legitimate, though no volume may be that large.
        assert_eq!(parse_memory("2GiB"), Ok(2 << 30));
        assert_eq!(parse_memory("2Gi"), Ok(2 << 30));
        assert!(parse_size("2GiB").is_err());
        assert_eq!(parse_memory("64Mi"), Ok(64 << 20));
        assert_eq!(parse_memory("1TiB"), Ok(1 << 40));
        assert!(check_memory(parse_memory("2TiB").unwrap())
            .unwrap_err()
            .contains("out of range"));
        assert!(check_memory(parse_memory("4MiB").unwrap())
            .unwrap_err()
            .contains("out of range"));
        assert!(check_memory(parse_memory("2GiB").unwrap()).is_ok());
        assert!(parse_memory("99999999999TiB")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_memory("512M").unwrap_err().contains("ambiguous"));
        assert!(parse_memory("2GB").unwrap_err().contains("ambiguous"));
        assert!(parse_memory("lots")
            .unwrap_err()
            .contains("not a memory size"));
    }

    #[test]
    fn durations_parse_and_bad_ones_explain_the_format() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").unwrap_err().contains("\"30s\""));
    }
}
