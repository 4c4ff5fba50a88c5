//! `brownout new NAME --system FILE --fault '…' --request '…'`: a scenario from an incident. The
//! incident's fault (one of the fault kinds, written as in a scenario file), how long it lasted
//! (compressed to a phase), what clients sent, and the alerts that should have paged become a
//! scenario file with the expectations a serious team holds for that kind of fault (fail fast with
//! a retryable status from the app, bounded latency, no restart, readiness where it applies,
//! recovery, data integrity if the system declares it), each commented. The file is validated
//! before it is written: what `new` writes always loads, and runs as written.

use crate::error::{BrownoutError, Exit, Result};
use crate::spec::{self, FaultSpec};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What `brownout new` was asked for.
#[derive(clap::Args)]
pub struct NewArgs {
    /// The scenario's name (and file name): letters, digits, '-', '_'.
    pub name: String,
    /// The system file of the app the incident happened to.
    #[arg(long)]
    pub system: PathBuf,
    /// The fault, as a scenario file's inline table without braces, e.g.
    /// 'kind = "proxy", proxy = "payments", toxic = { kind = "down" }'.
    #[arg(long)]
    pub fault: String,
    /// One request clients sent: 'METHOD PATH [JSON BODY]' (repeatable; at least one).
    #[arg(long = "request", required = true)]
    pub requests: Vec<String>,
    /// How long the fault phase lasts (an incident of minutes is compressed to seconds).
    #[arg(long, default_value = "20s")]
    pub fault_for: String,
    #[arg(long, default_value = "10s")]
    pub baseline_for: String,
    #[arg(long, default_value = "20s")]
    pub recovery_for: String,
    /// One line on what happened (the scenario's summary).
    #[arg(long)]
    pub summary: Option<String>,
    /// Requests per second.
    #[arg(long, default_value_t = 40)]
    pub rate: u32,
    /// An alert that should have paged during the fault (repeatable).
    #[arg(long = "alert")]
    pub alerts: Vec<String>,
    /// Where to write NAME.toml (default: the scenarios dir).
    #[arg(long, env = "BROWNOUT_SCENARIOS", default_value = "scenarios")]
    pub out: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

fn bad(msg: String) -> BrownoutError {
    BrownoutError::BadInput(msg)
}

/// One `--request`: method, path, optional JSON body.
struct Request {
    method: String,
    path: String,
    body: Option<String>,
}

fn parse_request(text: &str) -> Result<Request> {
    let text = text.trim();
    let (method, rest) = text.split_once(' ').ok_or_else(|| {
        bad(format!(
            "--request '{text}': write 'METHOD PATH [JSON BODY]', e.g. 'GET /api/catalog' or 'POST /api/checkout {{\"item_id\": 1}}'"
        ))
    })?;
    let rest = rest.trim();
    let (path, body) = match rest.split_once(' ') {
        Some((p, b)) => (p, Some(b.trim().to_string())),
        None => (rest, None),
    };
    Ok(Request {
        method: method.to_ascii_uppercase(),
        path: path.to_string(),
        body,
    })
}

/// A request's name from its path: its last plain segment ("/api/checkout" → "checkout").
fn request_name(path: &str, taken: &[String]) -> String {
    let base: String = path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('/')
        .find(|s| !s.is_empty() && !s.starts_with('{'))
        .unwrap_or("root")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// A TOML string literal.
fn lit(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The scenario file's text.
fn render(
    args: &NewArgs,
    fault: &FaultSpec,
    system: &spec::System,
    system_ref: &str,
) -> Result<String> {
    let mut requests = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for r in &args.requests {
        let r = parse_request(r)?;
        names.push(request_name(&r.path, &names));
        requests.push(r);
    }
    let service = system.file.ingress.service.clone();
    let svc = system
        .file
        .services
        .iter()
        .find(|s| s.name.get_ref() == &service);
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "# Written by `brownout new` from an incident; edit freely, then `brownout validate` it."
    );
    let _ = writeln!(w, "name = {}", lit(&args.name));
    let summary = args.summary.clone().unwrap_or_else(|| {
        format!(
            "{} on {}: what clients see, whether it pages, and recovery",
            fault.kind(),
            system.name
        )
    });
    let _ = writeln!(w, "summary = {}", lit(&summary));
    let _ = writeln!(w, "system = {}\n", lit(system_ref));
    let _ = writeln!(w, "[load]\nrate = {}\ntimeout = \"10s\"\n", args.rate);
    for (r, name) in requests.iter().zip(&names) {
        let _ = writeln!(w, "[[load.requests]]\nname = {}", lit(name));
        let _ = writeln!(w, "method = {}\npath = {}", lit(&r.method), lit(&r.path));
        if let Some(b) = &r.body {
            let _ = writeln!(w, "body = {}", lit(b));
        }
        if fault.fault().adds_requests().contains(name) {
            let _ = writeln!(
                w,
                "# Sent only during the fault: this request is the fault.\nduring = [\"fault\"]"
            );
        }
        if r.method != "GET" && r.method != "HEAD" {
            let _ = writeln!(
                w,
                "# A fresh Idempotency-Key per send: its 2xx answers count as acknowledged.\nidempotency_key = true"
            );
        }
        let _ = writeln!(w, "weight = 1\n");
    }
    let _ = writeln!(
        w,
        "[[phases]]\nname = \"baseline\"\nfor = {}\n",
        lit(&args.baseline_for)
    );
    let _ = writeln!(
        w,
        "[[phases]]\nname = \"fault\"\nfor = {}",
        lit(&args.fault_for)
    );
    let _ = writeln!(w, "fault = {{ {} }}\n", args.fault.trim());
    let _ = writeln!(
        w,
        "[[phases]]\nname = \"recovery\"\nfor = {}\n",
        lit(&args.recovery_for)
    );

    let expect = |w: &mut String, why: &str, body: &str| {
        let _ = writeln!(w, "# {why}\n[[expect]]\n{body}\n");
    };
    expect(w, "Before the fault: nothing but success.", "id = \"baseline-no-5xx\"\nkind = \"status-codes\"\nduring = \"baseline\"\nallowed = [200, 201, 202, 204]");
    // What the kind predicts clients see while it lasts (its module says, with why).
    let predicted = fault.fault().predicts();
    let (retry, why) = (&predicted.retry_after, predicted.why);
    let mut allowed = vec![200, 201, 202, 204];
    allowed.extend(&predicted.allowed);
    let list = |v: &[u16]| v.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    let mut body = format!(
        "id = \"fault-answers-from-app\"\nkind = \"status-codes\"\nduring = \"fault\"\nallowed = [{}]\nfrom_app = true",
        list(&allowed)
    );
    if !retry.is_empty() {
        let _ = write!(body, "\nretry_after = [{}]", list(retry));
    }
    expect(w, &format!("During the fault: {why}."), &body);
    expect(w, "Failing fast, not hanging: the slowest answers stay well under the ingress's read timeout.", "id = \"fault-p99-bounded\"\nkind = \"latency\"\nduring = \"fault\"\npercentile = 99\nbelow = \"2s\"");
    if predicted.readiness_drops && svc.is_some_and(|s| s.readiness.is_some()) {
        expect(w, &format!("Readiness says what is wrong: every {service} replica leaves the endpoints, and comes back."), &format!("id = \"readiness-drops\"\nkind = \"readiness\"\nservice = {}\nduring = \"fault\"\ndrops_within = \"5s\"\nrecovers_within = \"10s\"", lit(&service)));
    }
    expect(
        w,
        "Liveness holds: nothing is restarted for a fault outside the process.",
        &format!(
            "id = \"no-restarts\"\nkind = \"restarts\"\nservice = {}\nmax = 0",
            lit(&service)
        ),
    );
    for (i, a) in args.alerts.iter().enumerate() {
        let id = if args.alerts.len() == 1 {
            "pages".to_string()
        } else {
            format!("pages-{}", i + 1)
        };
        expect(w, &format!("{a} should have paged: it fires during the fault, and clears after."), &format!("id = {}\nkind = \"alert\"\nalert = {}\nphase = \"fault\"\nfires_within = \"15s\"\nclears_within = \"30s\"", lit(&id), lit(a)));
    }
    expect(
        w,
        "Recovery: no failure a while after the fault is healed.",
        "id = \"recovers\"\nkind = \"recovery\"\nafter = \"fault\"\nwithin = \"10s\"",
    );
    if system.file.integrity.is_some() {
        expect(
            w,
            "Nothing acknowledged is lost, nothing is done twice.",
            "id = \"data-integrity\"\nkind = \"data-integrity\"",
        );
    }
    let _ = writeln!(w, "# The standing no-silent-outage expectation is added by itself: an outage clients see must page.");
    let _ = writeln!(w, "#\n# Once the app's fix is in, keep the bug switchable and declare what it fails, so `brownout prove`\n# shows this scenario catches it:\n# [catches]\n# the-bug = [\"fault-answers-from-app\"]");
    Ok(s)
}

/// A path to `target` usable from inside `dir` (relative when both are relative to one place).
fn relative_to(dir: &Path, target: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (d, t) = (abs(dir), abs(target));
    // Relative only inside the directory brownout runs in (a repository); else absolute.
    let here = abs(Path::new("."));
    if !(d.starts_with(&here) && t.starts_with(&here)) {
        return t.display().to_string();
    }
    let dc: Vec<_> = d.components().collect();
    let tc: Vec<_> = t.components().collect();
    let common = dc.iter().zip(&tc).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return t.display().to_string();
    }
    let mut rel = PathBuf::new();
    for _ in common..dc.len() {
        rel.push("..");
    }
    for c in &tc[common..] {
        rel.push(c);
    }
    rel.display().to_string()
}

pub fn new(args: NewArgs) -> Result<Exit> {
    crate::checks::name("scenario name", &args.name)
        .map_err(|e| bad(format!("{e} (the name is the file's name too)")))?;
    let system = spec::load_system(&args.system)?;
    #[derive(serde::Deserialize)]
    struct Wrapper {
        fault: FaultSpec,
    }
    let fault = toml::from_str::<Wrapper>(&format!("fault = {{ {} }}", args.fault.trim()))
        .map_err(|e| {
            bad(format!(
                "--fault '{}': {} (write it as in a scenario file without the braces, e.g. 'kind = \"database-down\"')",
                args.fault,
                e.message()
            ))
        })?
        .fault;
    if !args.out.is_dir() {
        return Err(bad(format!(
            "--out {}: not a directory (create it, or give the scenarios dir)",
            args.out.display()
        )));
    }
    let path = args.out.join(format!("{}.toml", args.name));
    if path.exists() && !args.force {
        return Err(bad(format!(
            "{} exists: pick another name, or add --force to overwrite it",
            path.display()
        )));
    }
    let text = render(
        &args,
        &fault,
        &system,
        &relative_to(&args.out, &args.system),
    )?;
    // What is written must load: the same checks as `validate`, errors at the flags' values.
    let scenario = spec::scenario_from_text(&path, &text, None).map_err(|e| {
        bad(format!(
            "the scenario from these flags does not validate: {e}"
        ))
    })?;
    std::fs::write(&path, &text)
        .map_err(|e| BrownoutError::Environment(format!("cannot write {}: {e}", path.display())))?;
    println!(
        "wrote {} ({} phases, {} expectations with the standing one)",
        path.display(),
        scenario.phases.len(),
        scenario.expectations.len()
    );
    println!("run it: brownout run {}", path.display());
    Ok(Exit::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_get_names_from_their_paths() {
        let r = parse_request("post /api/checkout {\"item_id\": 1}").unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/api/checkout")
        );
        assert_eq!(r.body.as_deref(), Some("{\"item_id\": 1}"));
        assert!(parse_request("/api/catalog").is_err());
        let taken = vec!["checkout".to_string()];
        assert_eq!(request_name("/api/checkout", &taken), "checkout-2");
        assert_eq!(request_name("/api/orders/{id}?x=1", &[]), "orders");
        assert_eq!(request_name("/", &[]), "root");
    }

    /// Every fault kind is in the game-day catalogue of a system that has its target (with
    /// presets the game day accepts), and `brownout new` with the kind's example writes a scenario
    /// that loads, with that fault. Only `requests` is not offered to a game day (its module says
    /// why).
    #[test]
    fn every_fault_kind_is_in_the_catalogue_and_in_new() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let system_path = root.join("scenarios/systems/checkout.toml");
        let system = spec::load_system(&system_path).unwrap();
        let catalog = crate::gameday::catalog::catalog(&system);
        let checks = crate::spec::gameday::FaultChecks::new(&system);
        let out = tempfile::tempdir().unwrap();
        for kind in crate::faults::KINDS {
            if kind.name != "requests" {
                assert!(
                    catalog.kinds.iter().any(|k| k.kind == kind.name),
                    "{} is not in the game-day catalogue",
                    kind.name
                );
                let presets: Vec<_> = catalog
                    .presets
                    .iter()
                    .filter(|p| p.fault["kind"] == kind.name)
                    .collect();
                // A rollout needs a revision to roll out: no preset can know one.
                assert!(
                    kind.name == "rollout" || !presets.is_empty(),
                    "{} has no preset",
                    kind.name
                );
                for p in presets {
                    let f = crate::spec::gameday::fault_for_gameday(&checks, &p.fault)
                        .unwrap_or_else(|e| panic!("preset {}: {e}", p.name));
                    assert_eq!(f.kind(), kind.name);
                }
            }
            let fault = (kind.example)(&spec::system_facts(&system))
                .unwrap_or_else(|| panic!("{}: no example for checkout", kind.name));
            let name = format!("new-{}", kind.name);
            new(NewArgs {
                name: name.clone(),
                system: system_path.clone(),
                fault,
                requests: vec![
                    "GET /api/catalog".into(),
                    format!(
                        "POST /api/{} {{}}",
                        crate::faults::requests::EXAMPLE_REQUEST
                    ),
                ],
                fault_for: "20s".into(),
                baseline_for: "10s".into(),
                recovery_for: "20s".into(),
                summary: None,
                rate: 40,
                alerts: vec![],
                out: out.path().to_path_buf(),
                force: false,
            })
            .unwrap_or_else(|e| panic!("new with {}: {e}", kind.name));
            let s = spec::load_scenario(&out.path().join(format!("{name}.toml"))).unwrap();
            let f = s.phases.iter().find_map(|p| p.fault.as_ref()).unwrap();
            assert_eq!(f.kind(), kind.name);
        }
    }

    #[test]
    fn paths_are_made_relative_to_the_output_dir() {
        assert_eq!(
            relative_to(
                Path::new("scenarios"),
                Path::new("scenarios/systems/checkout.toml")
            ),
            "systems/checkout.toml"
        );
        assert_eq!(
            relative_to(
                Path::new("incidents"),
                Path::new("scenarios/systems/checkout.toml")
            ),
            "../scenarios/systems/checkout.toml"
        );
        // Outside the directory brownout runs in: absolute.
        assert_eq!(
            relative_to(Path::new("/tmp/x"), Path::new("/etc/s.toml")),
            "/etc/s.toml"
        );
    }
}
