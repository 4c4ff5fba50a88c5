//! Loading and validating a system file: every value range-checked and every name, path and
//! `{placeholder}` checked before any of it reaches a process, a config file or a mount, each
//! error at file:line:col.

use super::locate::Locator;
use super::{parse_toml, read, PreStopSpec, ProbeSpec, System, SystemFile};
use crate::checks;
use crate::error::Result;
use crate::key_path;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);
const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Loads and validates a system file.
pub fn load_system(path: &Path) -> Result<System> {
    let text = read(path)?;
    let file: SystemFile = parse_toml(path, &text)?;
    let loc = Locator::new(path, &text);
    let rule_files = check(&loc, &file)?;
    let mut alerts = Vec::new();
    for (i, r) in rule_files.iter().enumerate() {
        if let Some(why) = super::source::not_a_file(r) {
            return Err(loc.at(
                key_path!["prometheus", "rule_files", i],
                format!("rule file '{}' {why}", r.display()),
            ));
        }
        alerts.extend(super::rules::load(r)?);
    }
    Ok(System {
        name: file.name.clone(),
        path: path.to_path_buf(),
        file,
        rule_files,
        alerts,
    })
}

/// Checks everything that needs no other file; returns the rule files' paths.
fn check(loc: &Locator, file: &SystemFile) -> Result<Vec<PathBuf>> {
    let at = |keys: &[super::locate::Seg], r: std::result::Result<(), String>| {
        r.map_err(|msg| loc.at(keys, msg))
    };
    at(key_path!["name"], checks::name("system name", &file.name))?;
    if let Some(db) = &file.database {
        let ok = !db.name.is_empty()
            && db.name.len() <= checks::MAX_NAME
            && db.name.starts_with(|c: char| c.is_ascii_lowercase())
            && db
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(loc.at(
                key_path!["database", "name"],
                format!(
                    "database name '{}': use 1 to {} lowercase letters, digits and '_', starting with a letter",
                    db.name.escape_debug(),
                    checks::MAX_NAME
                ),
            ));
        }
    }
    if file.services.is_empty() {
        return Err(loc.at(
            key_path!["services"],
            "a system needs at least one [[services]] entry",
        ));
    }
    let service_names: Vec<&String> = file.services.iter().map(|s| s.name.get_ref()).collect();
    for (i, s) in file.services.iter().enumerate() {
        let name = s.name.get_ref();
        at(
            key_path!["services", i, "name"],
            checks::name("service name", name),
        )?;
        // A Deployment, a Service, a container and a label value on Kubernetes.
        at(
            key_path!["services", i, "name"],
            checks::kube_name(
                "service name",
                "Service",
                name,
                checks::KubeName::Rfc1035Label,
            ),
        )?;
        if service_names[..i].contains(&name) {
            return Err(loc.at_span(s.name.span(), format!("service '{name}' is defined twice")));
        }
    }
    for (i, p) in file.proxies.iter().enumerate() {
        at(
            key_path!["proxies", i, "name"],
            checks::name("proxy name", &p.name),
        )?;
        if file.proxies[..i].iter().any(|q| q.name == p.name) {
            return Err(loc.at(
                key_path!["proxies", i, "name"],
                format!("proxy '{}' is declared twice", p.name),
            ));
        }
        if p.upstream != "database" && !service_names.iter().any(|n| **n == p.upstream) {
            return Err(loc.at(
                key_path!["proxies", i, "upstream"],
                format!(
                    "proxy '{}': upstream '{}' is neither a service nor \"database\"",
                    p.name,
                    p.upstream.escape_debug()
                ),
            ));
        }
        if p.upstream == "database" && file.database.is_none() {
            return Err(loc.at(
                key_path!["proxies", i, "upstream"],
                format!(
                    "proxy '{}': upstream \"database\" but the system has no [database]",
                    p.name
                ),
            ));
        }
    }
    for i in 0..file.services.len() {
        check_service(loc, file, i)?;
    }

    let ing = &file.ingress;
    if !service_names.iter().any(|n| **n == ing.service) {
        return Err(loc.at(
            key_path!["ingress", "service"],
            format!(
                "[ingress] service '{}' is not one of the services ({})",
                ing.service.escape_debug(),
                service_names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    at(
        key_path!["ingress", "connect_timeout"],
        checks::duration("connect_timeout", ing.connect_timeout.get(), MS, secs(60)),
    )?;
    at(
        key_path!["ingress", "read_timeout"],
        checks::duration("read_timeout", ing.read_timeout.get(), MS, secs(3600)),
    )?;
    at(
        key_path!["ingress", "propagation_delay"],
        checks::duration(
            "propagation_delay",
            ing.propagation_delay.get(),
            Duration::ZERO,
            secs(60),
        ),
    )?;
    at(
        key_path!["ingress", "retries"],
        checks::retries(&ing.retries),
    )?;

    let prom = &file.prometheus;
    for (key, d) in [
        ("scrape_interval", prom.scrape_interval),
        ("evaluation_interval", prom.evaluation_interval),
    ] {
        at(
            key_path!["prometheus", key],
            checks::duration(key, d.get(), Duration::from_millis(100), secs(300)),
        )?;
    }
    let dir = path_dir(loc.path());
    for (i, r) in prom.rule_files.iter().enumerate() {
        let base = Path::new(r)
            .file_name()
            .map(|b| b.to_string_lossy().to_string())
            .unwrap_or_default();
        at(
            key_path!["prometheus", "rule_files", i],
            checks::rule_file_name(r, &base),
        )?;
    }
    let rule_files: Vec<PathBuf> = prom.rule_files.iter().map(|r| dir.join(r)).collect();

    if let Some(integrity) = &file.integrity {
        if file.database.is_none() {
            return Err(loc.at(
                key_path!["integrity"],
                "[integrity] queries the system's database, but it declares no [database]",
            ));
        }
        if let Some(ledger) = &integrity.ledger {
            if !service_names.iter().any(|n| **n == ledger.service) {
                return Err(loc.at(
                    key_path!["integrity", "ledger", "service"],
                    format!(
                        "[integrity.ledger] service '{}' is not one of the services",
                        ledger.service.escape_debug()
                    ),
                ));
            }
            at(
                key_path!["integrity", "ledger", "path"],
                checks::request_path("[integrity.ledger] path", &ledger.path),
            )?;
            if integrity.committed_ids_query.is_none() {
                return Err(loc.at(
                    key_path!["integrity", "ledger"],
                    "[integrity] a ledger needs committed_ids_query (the ids each entry belongs to)",
                ));
            }
        }
    }
    Ok(rule_files)
}

fn path_dir(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new("."))
}

/// The placeholders a service's command and env may use.
pub fn known_placeholders(file: &SystemFile, service: usize) -> Vec<String> {
    let mut known: Vec<String> = ["bin_dir", "listen_addr", "replica"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if file.database.is_some() {
        known.push("database_url".into());
    }
    known.extend(
        file.services
            .iter()
            .map(|s| format!("service.{}.url", s.name.get_ref())),
    );
    known.extend(
        file.proxies
            .iter()
            .map(|p| format!("proxy.{}.addr", p.name)),
    );
    known.extend(
        file.services[service]
            .volumes
            .iter()
            .map(|v| format!("volume.{}", v.name)),
    );
    known
}

fn check_service(loc: &Locator, file: &SystemFile, i: usize) -> Result<()> {
    let s = &file.services[i];
    let name = s.name.get_ref();
    let at = |keys: &[super::locate::Seg], r: std::result::Result<(), String>| {
        r.map_err(|msg| loc.at(keys, format!("service '{name}': {msg}")))
    };
    let known = known_placeholders(file, i);
    if s.command.is_empty() || s.command[0].trim().is_empty() {
        return Err(loc.at(
            key_path!["services", i, "command"],
            format!(
                "service '{name}': command must not be empty (e.g. [\"{{bin_dir}}/checkout\"])"
            ),
        ));
    }
    for (j, arg) in s.command.iter().enumerate() {
        at(
            key_path!["services", i, "command", j],
            checks::template("command", arg, &known),
        )?;
    }
    for (k, v) in &s.env {
        at(
            key_path!["services", i, "env", k.as_str()],
            checks::env_name(k),
        )?;
        at(
            key_path!["services", i, "env", k.as_str()],
            checks::template(&format!("env {k}"), v, &known),
        )?;
    }
    if let Some(b) = &s.bug_env {
        at(key_path!["services", i, "bug_env"], checks::env_name(b))?;
    }
    if s.bug_env.is_none() && !s.bugs.is_empty() {
        at(
            key_path!["services", i, "bugs"],
            Err("bugs are listed but no bug_env says which environment variable switches them on, so --bug could never reach the service: add bug_env (e.g. \"CHECKOUT_BUGS\") or remove bugs".into()),
        )?;
    }
    for (j, b) in s.bugs.iter().enumerate() {
        at(key_path!["services", i, "bugs", j], checks::name("bug", b))?;
    }
    at(
        key_path!["services", i, "replicas"],
        checks::number("replicas", s.replicas, 1, 20),
    )?;
    let grace = s.grace_period;
    at(
        key_path!["services", i, "grace_period"],
        checks::duration("grace_period", grace.get(), Duration::ZERO, secs(3600)),
    )?;
    match &s.pre_stop {
        Some(PreStopSpec::Sleep(d)) if *d >= grace => {
            return Err(loc.at_span(s.name.span(), format!("service '{name}': pre_stop sleep {d} must be shorter than grace_period {grace} (it counts inside it)")));
        }
        Some(PreStopSpec::Http(p)) => at(
            key_path!["services", i, "pre_stop", "http"],
            checks::request_path("pre_stop http path", p),
        )?,
        _ => {}
    }
    for (key, probe) in [("readiness", &s.readiness), ("liveness", &s.liveness)] {
        if let Some(p) = probe {
            check_probe(loc, name, i, key, p)?;
        }
    }
    if let Some(m) = &s.metrics_path {
        at(
            key_path!["services", i, "metrics_path"],
            checks::request_path("metrics_path", m)
                .and_then(|()| checks::config_string("metrics_path", m)),
        )?;
    }
    for (j, v) in s.volumes.iter().enumerate() {
        at(
            key_path!["services", i, "volumes", j, "name"],
            checks::name("volume name", &v.name).and_then(|()| {
                checks::kube_name(
                    "volume name",
                    "volume",
                    &v.name,
                    checks::KubeName::Rfc1123Label,
                )
            }),
        )?;
        if s.volumes[..j].iter().any(|w| w.name == v.name) {
            return Err(loc.at(
                key_path!["services", i, "volumes", j, "name"],
                format!("service '{name}': volume '{}' is declared twice", v.name),
            ));
        }
    }
    Ok(())
}

fn check_probe(loc: &Locator, service: &str, i: usize, key: &str, p: &ProbeSpec) -> Result<()> {
    let at = |field: &str, r: std::result::Result<(), String>| {
        r.map_err(|msg| {
            loc.at(
                key_path!["services", i, key, field],
                format!("service '{service}': {key} {msg}"),
            )
        })
    };
    at("path", checks::request_path("path", &p.path))?;
    at(
        "period",
        checks::duration(
            "period",
            p.period.get(),
            Duration::from_millis(100),
            secs(300),
        ),
    )?;
    at(
        "timeout",
        checks::duration(
            "timeout",
            p.timeout.get(),
            Duration::from_millis(10),
            secs(300),
        ),
    )?;
    at(
        "failure_threshold",
        checks::number("failure_threshold", p.failure_threshold, 1, 100),
    )?;
    at(
        "success_threshold",
        checks::number("success_threshold", p.success_threshold, 1, 100),
    )?;
    Ok(())
}
