//! `brownout gameday SYSTEM`: run a game day; `brownout gameday inject|heal|rate|note|status|stop`:
//! act on the running one from another terminal, through its control API (URL and token from
//! `<reports-dir>/gameday/session.json`, or `--url` and `--token`).

use super::session::{On, Session};
use crate::error::{BrownoutError, Exit};
use crate::gameday::{self, Gameday, GamedayOptions, SessionInfo};
use crate::{platform, spec};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GamedayCmd {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    start: Start,
}

#[derive(Args)]
struct Start {
    /// The system file to deploy (e.g. scenarios/systems/checkout.toml).
    system: Option<PathBuf>,
    /// A scenario file whose [load] to drive (default: the first scenario in the scenarios dir
    /// that runs on this system file).
    #[arg(long)]
    load: Option<PathBuf>,
    /// Switch a bug of the app back on (repeatable).
    #[arg(long = "bug")]
    bugs: Vec<String>,
    /// Where the control API and page listen. Loopback only, unless given with --token.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// The API token (default: a fresh random one, printed at start).
    #[arg(long, env = "BROWNOUT_GAMEDAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Stop by itself after this long (healing first), e.g. 30m, 2h; at most 12h.
    #[arg(long, default_value = "2h", value_parser = spec::parse_duration)]
    cap: Duration,
    /// The highest rate `rate` may set (requests per second); bounds the load's sends too.
    #[arg(long, default_value_t = 1000)]
    max_rate: u32,
    /// Expectations to judge over the fault windows: a file of [[expect]] entries as in a
    /// scenario (phases are window names: steady, steady-2, …, or a fault's name).
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Stop by itself (healing first) when the harness's resident memory passes this, e.g. 1GiB.
    /// Responses stream to disk, so memory stays flat over time (measured: 16.8–20.4 MB through a
    /// 30-minute game day at 400 req/s); what can grow is the requests in flight, bounded by
    /// rate × timeout × 2 (about 2 KB each: 142 MB at the most for a run at 2,000 req/s with
    /// 40,000 in flight against a stack that could not keep up), so the default holds the default
    /// --max-rate's worst case (about 75 MB) three times over.
    #[arg(long, default_value = "256MiB", value_parser = crate::units::parse_memory)]
    max_memory: u64,
    /// Stop by itself (healing first) when the reports directory's filesystem has less free
    /// space than this: every response streams there (about 200 bytes each: 420 MB an hour at
    /// 400 req/s), the component logs add at most 256 MiB per run.
    #[arg(long, default_value = "1GiB", value_parser = crate::units::parse_bytes)]
    min_free_disk: u64,
    #[arg(long, env = "BROWNOUT_SCENARIOS", default_value = "scenarios")]
    scenarios_dir: PathBuf,
    #[arg(long, env = "BROWNOUT_REPORTS", default_value = "reports")]
    reports_dir: PathBuf,
}

/// Where the running game day is.
#[derive(Args)]
struct Target {
    /// The game day's URL (default: from <reports-dir>/gameday/session.json).
    #[arg(long)]
    url: Option<String>,
    #[arg(long, env = "BROWNOUT_GAMEDAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long, env = "BROWNOUT_REPORTS", default_value = "reports")]
    reports_dir: PathBuf,
}

#[derive(Subcommand)]
enum Action {
    /// Inject a fault: JSON or TOML in a scenario's fault shape, or @FILE holding one, e.g.
    /// '{"kind": "proxy", "proxy": "payments", "toxic": {"kind": "latency", "latency": "6s"}}'.
    Inject {
        fault: String,
        /// Its name in the report's windows (default: kind-N).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Heal one fault by name, or --all (newest first).
    Heal {
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        all: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Set the load's rate (requests per second).
    Rate {
        rate: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Add a note to the game day's record.
    Note {
        text: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print the live view in a few lines.
    Status {
        /// The whole view as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Heal everything, stop, tear down and write the report.
    Stop {
        #[command(flatten)]
        target: Target,
    },
}

pub fn run(cmd: GamedayCmd) -> Result<Exit, BrownoutError> {
    match cmd.action {
        None => start(cmd.start),
        Some(action) => act(action),
    }
}

fn start(a: Start) -> Result<Exit, BrownoutError> {
    let Some(system) = a.system else {
        return Err(BrownoutError::BadInput(
            "gameday: give a system file (e.g. brownout gameday scenarios/systems/checkout.toml) or an action (inject, heal, rate, note, status, stop)".into(),
        ));
    };
    platform::sweep_leftovers();
    if let Some(why) = spec::source::not_a_file(&system) {
        return Err(BrownoutError::BadInput(format!(
            "{}: {why} (give the path of a system file, e.g. scenarios/systems/checkout.toml)",
            system.display()
        )));
    }
    let load_path = match a.load {
        Some(p) => p,
        None => default_load(&a.scenarios_dir, &system)?,
    };
    let mut load_from = spec::gameday::load_for_gameday(&load_path, &system)?;
    // The scenario's slots were sized for its own rate; `rate` may raise it to --max-rate, and
    // slots sized for 40 req/s would make most sends at 400 req/s late during a fault (the
    // harness's limit, not the system's).
    let slots = spec::default_max_in_flight(a.max_rate, load_from.load.timeout);
    load_from.load.max_in_flight = load_from.load.max_in_flight.max(slots);
    spec::check_bugs(&load_from.system, &a.bugs)?;
    if let Some(t) = &a.token {
        if t.len() < 16 {
            return Err(BrownoutError::BadInput(
                "--token: at least 16 characters (a guessable token guards nothing)".into(),
            ));
        }
    }
    let expectations = match &a.expect {
        Some(p) => spec::gameday::expectations_for_gameday(p, &load_from)?,
        None => vec![spec::ExpectSpec::default_no_silent_outage()],
    };
    let listen_given = a.listen.is_some();
    let listen = a.listen.unwrap_or(([127, 0, 0, 1], 0).into());
    // Refused before anything starts.
    gameday::api::check_bind(listen, listen_given, a.token.is_some())
        .map_err(BrownoutError::BadInput)?;
    eprintln!(
        "brownout: load from {} ({} req/s; `rate` changes it, up to {}; up to {} sends in flight)",
        load_path.display(),
        load_from.load.rate,
        a.max_rate,
        load_from.load.max_in_flight
    );
    let session = Session::new(On::Local, a.reports_dir.clone())?;
    let outcome = session.gameday(
        Gameday {
            load_from,
            expectations,
        },
        GamedayOptions {
            bugs: a.bugs,
            reports_dir: a.reports_dir,
            bin_dir: PathBuf::new(),
            listen,
            listen_given,
            token: a.token,
            cap: a.cap,
            max_rate: a.max_rate,
            max_memory: a.max_memory,
            min_free_disk: a.min_free_disk,
        },
    )?;
    match outcome.error {
        Some(e) => Err(e),
        None if outcome.report.verdict == crate::report::RunVerdict::Pass => Ok(Exit::Pass),
        None => Ok(Exit::Fail),
    }
}

/// The first scenario (by file name) whose system file is `system`.
fn default_load(scenarios_dir: &Path, system: &Path) -> Result<PathBuf, BrownoutError> {
    let want = std::fs::canonicalize(system).ok();
    for p in spec::scenario_paths(scenarios_dir)? {
        if let Ok(s) = spec::load_scenario(&p) {
            if std::fs::canonicalize(&s.system.path).ok() == want {
                return Ok(p);
            }
        }
    }
    Err(BrownoutError::BadInput(format!(
        "no scenario in {} runs on {}: give the load with --load SCENARIO.toml",
        scenarios_dir.display(),
        system.display()
    )))
}

fn act(action: Action) -> Result<Exit, BrownoutError> {
    use reqwest::Method;
    let (target, method, path, body) = match action {
        Action::Inject {
            fault,
            name,
            target,
        } => {
            let fault = parse_fault(&fault)?;
            let mut body = serde_json::json!({ "fault": fault });
            if let Some(n) = name {
                body["name"] = n.into();
            }
            (target, Method::POST, "/api/faults".to_string(), Some(body))
        }
        Action::Heal { name, all, target } => match (name, all) {
            (Some(n), false) => (target, Method::DELETE, format!("/api/faults/{n}"), None),
            (None, true) => (target, Method::DELETE, "/api/faults".into(), None),
            _ => {
                return Err(BrownoutError::BadInput(
                    "heal: give a fault's name, or --all".into(),
                ))
            }
        },
        Action::Rate { rate, target } => (
            target,
            Method::PUT,
            "/api/rate".into(),
            Some(serde_json::json!({ "rate": rate })),
        ),
        Action::Note { text, target } => (
            target,
            Method::POST,
            "/api/notes".into(),
            Some(serde_json::json!({ "text": text })),
        ),
        Action::Status { json, target } => {
            let v = call(&target, Method::GET, "/api/status", None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print_status(&v);
            }
            return Ok(Exit::Pass);
        }
        Action::Stop { target } => (target, Method::POST, "/api/stop".into(), None),
    };
    let v = call(&target, method, &path, body)?;
    println!("{v}");
    Ok(Exit::Pass)
}

/// A fault as JSON or TOML text, or `@FILE` holding either.
fn parse_fault(arg: &str) -> Result<serde_json::Value, BrownoutError> {
    let (text, from) = match arg.strip_prefix('@') {
        Some(path) => (
            spec::source::read_capped(Path::new(path))?,
            path.to_string(),
        ),
        None => (arg.to_string(), "the fault".to_string()),
    };
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        return Ok(v);
    }
    match toml::from_str::<toml::Table>(&text) {
        Ok(t) => serde_json::to_value(t).map_err(|e| BrownoutError::BadInput(format!("{from}: {e}"))),
        Err(e) => Err(BrownoutError::BadInput(format!(
            "{from}: neither JSON nor TOML ({}); write it like '{{\"kind\": \"pool-exhaustion\"}}' or kind = \"pool-exhaustion\"",
            e.message().trim()
        ))),
    }
}

fn call(
    target: &Target,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, BrownoutError> {
    let (url, token) = match (&target.url, &target.token) {
        (Some(u), Some(t)) => (u.clone(), t.clone()),
        _ => {
            let file = gameday::session_file(&target.reports_dir);
            let text = spec::source::read_capped(&file).map_err(|e| {
                BrownoutError::Environment(format!(
                    "no running game day found ({}: {e}); start one with `brownout gameday SYSTEM`, or give --url and --token",
                    file.display()
                ))
            })?;
            let info: SessionInfo = serde_json::from_str(&text)
                .map_err(|e| BrownoutError::Environment(format!("{}: {e}", file.display())))?;
            (
                target.url.clone().unwrap_or(info.url),
                target.token.clone().unwrap_or(info.token),
            )
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BrownoutError::Environment(format!("runtime: {e}")))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| BrownoutError::Environment(format!("HTTP client: {e}")))?;
        let mut req = client
            .request(method, format!("{}{path}", url.trim_end_matches('/')))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            BrownoutError::Environment(format!("cannot reach the game day at {url}: {e}"))
        })?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            Ok(v)
        } else {
            let msg = v["error"].as_str().unwrap_or("no reason given").to_string();
            let msg = format!("the game day answered {status}: {msg}");
            // Refused input is bad input; the rest is the environment.
            if status.is_client_error() && status != reqwest::StatusCode::CONFLICT {
                Err(BrownoutError::BadInput(msg))
            } else {
                Err(BrownoutError::Environment(msg))
            }
        }
    })
}

fn print_status(v: &serde_json::Value) {
    let l = &v["last_10s"];
    let pct = |x: &serde_json::Value| format!("{:.0}%", x.as_f64().unwrap_or(0.0) * 100.0);
    println!(
        "{} at {:.0} s, window {}, rate {}/s",
        v["stage"].as_str().unwrap_or("-"),
        v["t_s"].as_f64().unwrap_or(0.0),
        v["phase"].as_str().unwrap_or("-"),
        v["rate"]
    );
    println!(
        "last 10 s: {} answers, 5xx {} (app 503 {}, ingress {}), no answer {}, p50 {} ms, p99 {} ms",
        l["answers"],
        pct(&l["s5xx"]),
        pct(&l["app_503"]),
        pct(&l["ingress_5xx"]),
        pct(&l["none"]),
        l["p50_ms"],
        l["p99_ms"]
    );
    for r in v["replicas"].as_array().into_iter().flatten() {
        println!(
            "replica {}: ready {}, live {}, restarts {}",
            r["replica"].as_str().unwrap_or("?"),
            r["ready"],
            r["live"],
            r["restarts"]
        );
    }
    for a in v["alerts"].as_array().into_iter().flatten() {
        println!(
            "alert {}: {}",
            a["alert"].as_str().unwrap_or("?"),
            a["state"].as_str().unwrap_or("?")
        );
    }
    for f in v["faults"].as_array().into_iter().flatten() {
        println!(
            "fault {} ({}): {}",
            f["name"].as_str().unwrap_or("?"),
            f["kind"].as_str().unwrap_or("?"),
            f["what"].as_str().unwrap_or("")
        );
    }
}
