//! Configuration of the checkout service, read from environment variables and validated at boot,
//! before the port is bound. The bug switches (`CHECKOUT_BUGS`) are parsed here too.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// One classic defect that can be switched back on with `CHECKOUT_BUGS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bug {
    /// Waits on the DB pool without bound.
    NoAcquireTimeout,
    /// Liveness fails when the DB is slow, so a supervisor restarts healthy processes.
    LivenessChecksDb,
    /// Boots without required config and answers 500 at request time.
    SkipEnvValidation,
    /// SIGTERM is logged and ignored; only SIGKILL stops the process.
    IgnoreSigterm,
    /// Exits at once on SIGTERM, dropping in-flight requests.
    NoDrain,
    /// Waits on payments without bound, and has no circuit breaker.
    NoUpstreamTimeout,
    /// ENOSPC on the receipt write becomes an unhandled 500.
    Enospc500,
    /// Dependency errors become an unhandled 500 without Retry-After: payments refusing
    /// connections, and any database error (unreachable, pool exhausted, statement timed out);
    /// the payments breaker counts only timeouts, so a refusing payments never opens it.
    DependencyErrors500,
    /// Readiness checks the database on one connection opened at its first check and never
    /// reopened: after the database restarts, the replica stays unready for good.
    NoDbReconnect,
    /// No panic handler: a request that panics takes its connection down (the ingress answers 502),
    /// and the app never counts it.
    PanicUnhandled,
    /// The export builds however many items are asked for in memory: a large export exceeds the
    /// replica's memory limit and the kernel kills it.
    UnboundedExport,
}

impl Bug {
    pub const ALL: [Bug; 11] = [
        Bug::NoAcquireTimeout,
        Bug::LivenessChecksDb,
        Bug::SkipEnvValidation,
        Bug::IgnoreSigterm,
        Bug::NoDrain,
        Bug::NoUpstreamTimeout,
        Bug::Enospc500,
        Bug::DependencyErrors500,
        Bug::NoDbReconnect,
        Bug::PanicUnhandled,
        Bug::UnboundedExport,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::NoAcquireTimeout => "no-acquire-timeout",
            Bug::LivenessChecksDb => "liveness-checks-db",
            Bug::SkipEnvValidation => "skip-env-validation",
            Bug::IgnoreSigterm => "ignore-sigterm",
            Bug::NoDrain => "no-drain",
            Bug::NoUpstreamTimeout => "no-upstream-timeout",
            Bug::Enospc500 => "enospc-500",
            Bug::DependencyErrors500 => "dependency-errors-500",
            Bug::NoDbReconnect => "no-db-reconnect",
            Bug::PanicUnhandled => "panic-unhandled",
            Bug::UnboundedExport => "unbounded-export",
        }
    }
}

impl FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let known: Vec<_> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!(
                "unknown bug '{s}' in CHECKOUT_BUGS (known: {})",
                known.join(", ")
            )
        })
    }
}

/// The set of switched-on bugs.
#[derive(Debug, Clone, Default)]
pub struct Bugs(BTreeSet<Bug>);

impl Bugs {
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            set.insert(name.parse()?);
        }
        Ok(Bugs(set))
    }
    pub fn on(&self, bug: Bug) -> bool {
        self.0.contains(&bug)
    }
}

impl fmt::Display for Bugs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.0.iter().map(|b| b.name()).collect();
        write!(f, "{}", names.join(","))
    }
}

/// Validated configuration. The required values are `Option` only because the
/// `skip-env-validation` bug lets the service boot without them.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: Option<String>,
    pub payments_url: Option<String>,
    pub receipts_dir: Option<PathBuf>,
    pub listen_addr: SocketAddr,
    pub replica_name: String,
    pub db_pool_size: u32,
    pub db_acquire_timeout: Duration,
    pub db_statement_timeout: Duration,
    pub payments_timeout: Duration,
    pub breaker_failure_threshold: u32,
    pub breaker_open_for: Duration,
    pub drain_delay: Duration,
    pub shutdown_timeout: Duration,
    pub retry_after_secs: u32,
    /// How many receipt files the receipts volume keeps (the newest); older ones are pruned.
    pub receipts_keep: usize,
    /// The most items one `GET /api/export` may ask for (each is about 1 KiB in memory).
    pub max_export_items: u64,
    /// The table the catalogue is read from (a new revision may read a new table: if its
    /// migration has not run, the catalogue answers 500 while readiness, which checks the
    /// database but not every query, still passes: the `bad-deploy` scenario).
    pub catalog_table: String,
    pub bugs: Bugs,
}

/// A configuration problem found at boot: one line naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("required environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} has an invalid value '{value}': {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// The documented defaults of the optional variables (see the crate README).
pub const DEFAULTS: &[(&str, &str)] = &[
    ("LISTEN_ADDR", "127.0.0.1:8080"),
    ("REPLICA_NAME", "checkout"),
    ("DB_POOL_SIZE", "5"),
    ("DB_ACQUIRE_TIMEOUT_MS", "250"),
    ("DB_STATEMENT_TIMEOUT_MS", "1000"),
    ("PAYMENTS_TIMEOUT_MS", "800"),
    ("BREAKER_FAILURE_THRESHOLD", "5"),
    ("BREAKER_OPEN_MS", "3000"),
    ("DRAIN_DELAY_MS", "2000"),
    ("SHUTDOWN_TIMEOUT_MS", "10000"),
    ("RETRY_AFTER_SECS", "1"),
    ("RECEIPTS_KEEP", "1000"),
    ("MAX_EXPORT_ITEMS", "10000"),
    ("CATALOG_TABLE", "items"),
    ("CHECKOUT_BUGS", ""),
];

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| -> String {
            lookup(name)
                .or_else(|| {
                    DEFAULTS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.to_string())
                })
                .unwrap_or_default()
        };
        let bugs = Bugs::parse(&get("CHECKOUT_BUGS")).map_err(|reason| ConfigError::Invalid {
            name: "CHECKOUT_BUGS",
            value: get("CHECKOUT_BUGS"),
            reason,
        })?;
        let validate = !bugs.on(Bug::SkipEnvValidation);
        let required = |name: &'static str| -> Result<Option<String>, ConfigError> {
            match lookup(name).filter(|v| !v.trim().is_empty()) {
                Some(v) => Ok(Some(v)),
                None if validate => Err(ConfigError::Missing(name)),
                None => Ok(None),
            }
        };
        let database_url = required("DATABASE_URL")?;
        if let Some(url) = &database_url {
            if validate && !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid("DATABASE_URL", url, "must start with postgres://"));
            }
        }
        let payments_url = required("PAYMENTS_URL")?;
        if let Some(url) = &payments_url {
            if validate && !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "PAYMENTS_URL",
                    url,
                    "must start with http:// or https://",
                ));
            }
        }
        let receipts_dir = required("RECEIPTS_DIR")?.map(PathBuf::from);
        if let Some(dir) = &receipts_dir {
            if validate && !dir.is_dir() {
                return Err(invalid(
                    "RECEIPTS_DIR",
                    &dir.display().to_string(),
                    "is not an existing directory",
                ));
            }
        }
        let number = |name: &'static str| -> Result<u64, ConfigError> {
            let value = get(name);
            value
                .trim()
                .parse::<u64>()
                .map_err(|e| invalid(name, &value, &e.to_string()))
        };
        let millis = |name: &'static str| number(name).map(Duration::from_millis);
        let listen = get("LISTEN_ADDR");
        let listen_addr = listen.parse().map_err(|e: std::net::AddrParseError| {
            invalid("LISTEN_ADDR", &listen, &e.to_string())
        })?;
        let db_pool_size = number("DB_POOL_SIZE")?;
        if db_pool_size == 0 || db_pool_size > 1000 {
            return Err(invalid(
                "DB_POOL_SIZE",
                &db_pool_size.to_string(),
                "must be between 1 and 1000",
            ));
        }
        let catalog_table = get("CATALOG_TABLE");
        let identifier = catalog_table
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_lowercase() || (i > 0 && c.is_ascii_digit()));
        if catalog_table.is_empty() || catalog_table.len() > 63 || !identifier {
            return Err(invalid(
                "CATALOG_TABLE",
                &catalog_table,
                "must be a table name (lower-case letters, digits, _)",
            ));
        }
        Ok(Config {
            database_url,
            payments_url,
            receipts_dir,
            listen_addr,
            replica_name: get("REPLICA_NAME"),
            db_pool_size: db_pool_size as u32,
            db_acquire_timeout: millis("DB_ACQUIRE_TIMEOUT_MS")?,
            db_statement_timeout: millis("DB_STATEMENT_TIMEOUT_MS")?,
            payments_timeout: millis("PAYMENTS_TIMEOUT_MS")?,
            breaker_failure_threshold: number("BREAKER_FAILURE_THRESHOLD")?.max(1) as u32,
            breaker_open_for: millis("BREAKER_OPEN_MS")?,
            drain_delay: millis("DRAIN_DELAY_MS")?,
            shutdown_timeout: millis("SHUTDOWN_TIMEOUT_MS")?,
            retry_after_secs: number("RETRY_AFTER_SECS")?.max(1) as u32,
            receipts_keep: number("RECEIPTS_KEEP")?.max(1) as usize,
            max_export_items: number("MAX_EXPORT_ITEMS")?,
            catalog_table,
            bugs,
        })
    }
}

fn invalid(name: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|n| map.get(n).cloned())
    }

    const GOOD: &[(&str, &str)] = &[
        ("DATABASE_URL", "postgres://u@127.0.0.1/db"),
        ("PAYMENTS_URL", "http://127.0.0.1:1"),
        ("RECEIPTS_DIR", "/tmp"),
    ];

    #[test]
    fn each_required_variable_is_named_when_missing() {
        for missing in ["DATABASE_URL", "PAYMENTS_URL", "RECEIPTS_DIR"] {
            let vars: Vec<_> = GOOD
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = config(&vars).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("required environment variable {missing} is not set")
            );
        }
    }

    #[test]
    fn unknown_bug_is_an_error_and_known_ones_parse() {
        let mut vars = GOOD.to_vec();
        vars.push(("CHECKOUT_BUGS", "no-drain,bogus"));
        assert!(config(&vars)
            .unwrap_err()
            .to_string()
            .contains("unknown bug 'bogus'"));
        vars.pop();
        vars.push(("CHECKOUT_BUGS", "no-drain, enospc-500"));
        let c = config(&vars).unwrap();
        assert!(c.bugs.on(Bug::NoDrain) && c.bugs.on(Bug::Enospc500));
        assert!(!c.bugs.on(Bug::IgnoreSigterm));
    }

    #[test]
    fn skip_env_validation_boots_without_required_values() {
        let c = config(&[("CHECKOUT_BUGS", "skip-env-validation")]).unwrap();
        assert!(c.database_url.is_none() && c.payments_url.is_none());
    }

    #[test]
    fn invalid_optional_value_is_named() {
        let mut vars = GOOD.to_vec();
        vars.push(("DB_POOL_SIZE", "lots"));
        let err = config(&vars).unwrap_err().to_string();
        assert!(err.starts_with("environment variable DB_POOL_SIZE has an invalid value 'lots'"));
    }
}
