//! The rules a value must follow before the harness uses it: safe names (they become directory
//! names, replica names, metric labels), HTTP methods, request paths (origin-form only: load goes
//! to the ingress and nowhere else), environment variable names, `{placeholders}`, nginx retry
//! conditions and duration ranges. Each returns what is wrong and what would be right, for the
//! caller to place at file:line:col.

use std::time::Duration;

/// What a check returns: nothing, or what is wrong (for the caller to locate).
pub type Check = Result<(), String>;

/// `s` seconds, in a `const`.
pub const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The longest wait most checks allow.
pub const HOUR: Duration = secs(3600);

/// The longest name (a DNS label's length: names become Kubernetes object names too).
pub const MAX_NAME: usize = 63;

/// A name that can be a path segment, a replica or object name and a label: 1 to 63 of
/// `a-z A-Z 0-9 - _ .`, starting with a letter or digit (so never `.`, `..` or a hidden file).
pub fn name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else if s.is_empty() {
        Err(format!(
            "{what} is empty: give it a name such as \"checkout\""
        ))
    } else {
        Err(format!(
            "{what} '{}' is not a safe name: use 1 to {MAX_NAME} letters, digits, '-', '_' or '.', starting with a letter or digit",
            s.escape_debug()
        ))
    }
}

/// What Kubernetes makes of a name (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/,
/// "Object Names and IDs"): a service's name becomes a Deployment, a Service, a container and the
/// `app.kubernetes.io/name` label value; a volume's name a pod volume name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeName {
    /// RFC 1035 label names (a Service's name): at most 63 characters, lowercase letters, digits
    /// and '-', starting with a letter and ending with a letter or digit.
    Rfc1035Label,
    /// RFC 1123 label names (a pod volume's or container's name): the same, but it may start
    /// with a digit.
    Rfc1123Label,
}

/// `s` is a name Kubernetes accepts as `kind` (see [`KubeName`]); `what` says which name it is
/// and `object` what it becomes, for the message. Checked at validation, for the local platform
/// too: the same system file must deploy on both.
pub fn kube_name(what: &str, object: &str, s: &str, kind: KubeName) -> Result<(), String> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let first_ok = match kind {
        KubeName::Rfc1035Label => s.starts_with(|c: char| c.is_ascii_lowercase()),
        KubeName::Rfc1123Label => s.starts_with(alnum),
    };
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME
        && first_ok
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || c == '-');
    if ok {
        return Ok(());
    }
    let start = match kind {
        KubeName::Rfc1035Label => "starting with a letter",
        KubeName::Rfc1123Label => "starting with a letter or digit",
    };
    Err(format!(
        "{what} '{}' cannot be a Kubernetes {object} name: use 1 to {MAX_NAME} lowercase letters, digits and '-', {start} and ending with a letter or digit (e.g. '{}')",
        s.escape_debug(),
        suggest_kube_name(s)
    ))
}

/// A lowercase, '-'-separated form of `s`, for "e.g." in a message.
fn suggest_kube_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches('-').to_string();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert_str(0, "s-");
    }
    out.truncate(MAX_NAME);
    out
}

/// Characters that would end a quoted string in a generated config file (nginx.conf, a
/// Prometheus YAML), start a block or a variable (`{ } $ ;`), or escape: never needed in a path.
const CONFIG_SPECIAL: [char; 8] = ['\'', '"', '{', '}', '$', ';', '\\', '`'];

/// `s` is written into a generated config file (a Prometheus scrape config, nginx.conf): it
/// must contain nothing that would break out of its quotes, open a block or be interpolated.
pub fn config_string(what: &str, s: &str) -> Result<(), String> {
    if let Some(c) = s
        .chars()
        .find(|c| CONFIG_SPECIAL.contains(c) || c.is_control())
    {
        return Err(format!(
            "{what} '{}' contains {}: it is written into generated configuration (Prometheus, nginx), where it would break out of its quotes or be interpolated; percent-encode it or leave it out",
            s.escape_debug(),
            format!("{c:?}").replace('"', "'")
        ));
    }
    Ok(())
}

/// A rule file's name becomes a ConfigMap key on Kubernetes (`[-._a-zA-Z0-9]+`) and its path
/// is written into Prometheus' configuration: `path` is the file as written, `base` its name.
pub fn rule_file_name(path: &str, base: &str) -> Result<(), String> {
    let ok = !base.is_empty()
        && base.len() <= 253
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(format!(
            "rule file name \"{}\" must be letters, digits, '-', '_' and '.' only (it becomes a ConfigMap key on Kubernetes): rename the file, e.g. \"{}\"",
            base.escape_debug(),
            base.chars()
                .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
                .collect::<String>()
        ));
    }
    config_string("rule file path", path)
}

/// The methods a load request may use.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

pub fn method(s: &str) -> Result<(), String> {
    if METHODS.contains(&s) {
        Ok(())
    } else {
        Err(format!(
            "method '{}' is not an HTTP method: use one of {}",
            s.escape_debug(),
            METHODS.join(", ")
        ))
    }
}

/// A request path: origin-form (`/api/x?y=1`), so a request can only go to the address the
/// platform deployed; no scheme, no `//host`, no whitespace or control characters.
pub fn request_path(what: &str, s: &str) -> Result<(), String> {
    if s.contains("://") || s.starts_with("//") {
        return Err(format!(
            "{what} '{}' names another host: give a path on the system under test, such as \"/api/catalog\" (load, probes and faults only reach what the platform deployed)",
            s.escape_debug()
        ));
    }
    if !s.starts_with('/') {
        return Err(format!(
            "{what} '{}' must start with / (e.g. \"/api/catalog\")",
            s.escape_debug()
        ));
    }
    if s.len() > 2048 {
        return Err(format!("{what} is {} characters; at most 2048", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '\\' || *c == '#')
    {
        return Err(format!(
            "{what} '{}' contains {:?}: percent-encode it",
            s.escape_debug(),
            c
        ));
    }
    Ok(())
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn env_name(s: &str) -> Result<(), String> {
    let ok = s.len() <= 256
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not an environment variable name: use letters, digits and '_', not starting with a digit",
            s.escape_debug()
        ))
    }
}

/// The `{…}` placeholders in a template, in order.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if !after[..close].contains('{') => {
                out.push(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// Every placeholder of `template` is one of `known`.
pub fn template(what: &str, t: &str, known: &[String]) -> Result<(), String> {
    for p in placeholders(t) {
        if !known.iter().any(|k| k == p) {
            let near = known
                .iter()
                .min_by_key(|k| edit_distance(k, p))
                .filter(|k| edit_distance(k, p) <= 3)
                .map(|k| format!(" (did you mean {{{k}}}?)"))
                .unwrap_or_default();
            return Err(format!(
                "{what}: unknown placeholder {{{}}}{near}; known: {}",
                p.escape_debug(),
                known
                    .iter()
                    .map(|k| format!("{{{k}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// nginx `proxy_next_upstream` conditions the ingress accepts.
pub const RETRY_CONDITIONS: [&str; 11] = [
    "error",
    "timeout",
    "invalid_header",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_403",
    "http_404",
    "http_429",
    "non_idempotent",
];

/// `retries`: "off", or conditions from [`RETRY_CONDITIONS`] separated by spaces. Checked before
/// it is written into nginx.conf.
pub fn retries(s: &str) -> Result<(), String> {
    if s == "off" {
        return Ok(());
    }
    let words: Vec<&str> = s.split(' ').collect();
    if words.iter().any(|w| w.is_empty()) || words.is_empty() {
        return Err(format!(
            "retries '{}': write \"off\" or conditions separated by one space, e.g. \"error timeout\"",
            s.escape_debug()
        ));
    }
    for w in words {
        if !RETRY_CONDITIONS.contains(&w) {
            return Err(format!(
                "retries: '{}' is not an nginx proxy_next_upstream condition: use \"off\" or some of {}",
                w.escape_debug(),
                RETRY_CONDITIONS.join(", ")
            ));
        }
    }
    Ok(())
}

/// A duration within `[min, max]`; a number within `[min, max]` (with the units, which the
/// fault proxy's toxics check against too).
pub use crate::units::{check_duration as duration, check_number as number};

/// An HTTP status code (100 to 599).
pub fn status(what: &str, s: u16) -> Result<(), String> {
    number(what, s, 100, 599).map_err(|e| format!("{e} (an HTTP status)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_path_segments_and_labels() {
        for ok in ["checkout", "pool-exhaustion", "a_b.c", "r2", "X"] {
            assert!(name("name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "../../x", "/abs", ".", "..", ".hidden", "a/b", "a b", "é", "-x",
        ] {
            assert!(name("name", bad).is_err(), "{bad}");
        }
        assert!(name("name", &"a".repeat(64)).is_err());
        assert!(name("name", "").unwrap_err().contains("is empty"));
    }

    /// The rules of https://kubernetes.io/docs/concepts/overview/working-with-objects/names/
    /// ("Object Names and IDs"): RFC 1035 labels for Services, RFC 1123 labels for volumes.
    #[test]
    fn kubernetes_names_follow_its_label_rules() {
        use KubeName::*;
        for ok in ["checkout", "payments-stub", "a", "r2d2"] {
            assert!(kube_name("n", "Service", ok, Rfc1035Label).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "Checkout",
            "pay_ments",
            "2pay",
            "pay-",
            "-pay",
            "a.b",
            "",
            long.as_str(),
        ] {
            assert!(
                kube_name("n", "Service", bad, Rfc1035Label).is_err(),
                "{bad}"
            );
        }
        assert!(kube_name("n", "volume", "2receipts", Rfc1123Label).is_ok());
        assert!(kube_name("n", "volume", "receipts.v2", Rfc1123Label).is_err());
        assert!(kube_name("n", "volume", &"a".repeat(63), Rfc1123Label).is_ok());
        let e = kube_name("service name", "Service", "Pay_Ments", Rfc1035Label).unwrap_err();
        assert!(e.contains("(e.g. 'pay-ments')"), "{e}");
    }

    #[test]
    fn strings_for_generated_config_cannot_break_out_of_it() {
        assert!(config_string("metrics_path", "/metrics?format=prometheus&x=1").is_ok());
        for bad in [
            "/m'x", "/m\"x", "/m{x}", "/m$host", "/m;x", "/m\nx", "/m\\x", "/m`x",
        ] {
            assert!(config_string("metrics_path", bad).is_err(), "{bad}");
        }
        assert!(rule_file_name("../alerts/checkout.rules.yml", "checkout.rules.yml").is_ok());
        assert!(rule_file_name("../r/my rules.yml", "my rules.yml").is_err());
        assert!(rule_file_name("../it's/a.yml", "a.yml").is_err());
    }

    #[test]
    fn methods_come_from_the_http_set() {
        assert!(method("POST").is_ok());
        let e = method("PSOT").unwrap_err();
        assert!(e.contains("GET, HEAD, POST"), "{e}");
        assert!(method("post").is_err());
    }

    #[test]
    fn request_paths_are_origin_form_only() {
        assert!(request_path("path", "/api/catalog?x=1").is_ok());
        for bad in [
            "http://10.0.0.1:80/x",
            "//evil/x",
            "api",
            "",
            "/a b",
            "/a\nb",
            "/a\\b",
        ] {
            assert!(request_path("path", bad).is_err(), "{bad}");
        }
        assert!(request_path("path", "http://h/x")
            .unwrap_err()
            .contains("another host"));
    }

    #[test]
    fn placeholders_are_found_and_checked_with_a_suggestion() {
        assert_eq!(
            placeholders("http://{proxy.p.addr}/x{a}{{b}"),
            ["proxy.p.addr", "a", "b"]
        );
        let known = vec!["database_url".to_string(), "replica".to_string()];
        assert!(template("env X", "{database_url}", &known).is_ok());
        let e = template("env X", "{databse_url}", &known).unwrap_err();
        assert!(
            e.contains("unknown placeholder {databse_url} (did you mean {database_url}?)"),
            "{e}"
        );
        let e = template("env X", "{proxy.nope.addr}", &known).unwrap_err();
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn retries_are_nginx_conditions_only() {
        assert!(retries("off").is_ok());
        assert!(retries("error timeout http_503").is_ok());
        for bad in [
            "bogus",
            "error; include /etc/passwd",
            "",
            "error  timeout",
            "off error",
        ] {
            assert!(retries(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_names_and_ranges() {
        assert!(env_name("DB_URL").is_ok());
        assert!(env_name("1X").is_err());
        assert!(env_name("A=B").is_err());
        assert!(number("users", 0u32, 1, 10).is_err());
        assert!(duration(
            "period",
            Duration::ZERO,
            Duration::from_millis(100),
            Duration::from_secs(60)
        )
        .unwrap_err()
        .contains("between 100ms and 1m"));
        assert!(status("allowed", 999).is_err());
        assert!(status("allowed", 0).is_err());
    }
}
