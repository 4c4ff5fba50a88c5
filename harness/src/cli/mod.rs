//! The command line: `run` a scenario (on the local platform, a kind cluster or, opt-in, another
//! cluster), `prove` that scenarios catch their bugs, run a `suite` of scenarios for CI, `clean`
//! up after dead runs, `validate` scenario files, `list` scenarios, `summarize` many runs, print a
//! system's Kubernetes `manifests`, run a `gameday`, write a `new` scenario from an incident. Each command returns an [`Exit`] (or an error, whose exit code
//! it implies).

mod gameday;
mod new;
mod prove;
mod session;
mod suite;

use crate::error::{BrownoutError, Exit};
use crate::platform::kube::PlatformChoice;
use crate::{platform, spec};
use clap::{Parser, Subcommand};
use session::{On, Session};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "brownout",
    version,
    about = "Reproduce the failure modes behind HTTP 5xx and judge how the system behaves"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (a name in the scenarios dir, or a path), on the local platform by default.
    Run {
        scenario: String,
        /// Switch a bug of the app back on (repeatable), e.g. --bug no-acquire-timeout.
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Run against this system file instead of the one the scenario names.
        #[arg(long)]
        system: Option<PathBuf>,
        /// Compare with this earlier run (its report.json or its directory); default:
        /// <reports-dir>/<scenario>/baseline.json if it exists.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// If the run passes, store its report.json as the scenario's baseline.
        #[arg(long)]
        save_baseline: bool,
        #[command(flatten)]
        deploy: Deploy,
    },
    /// Prove that scenarios catch their bugs (their `[catches]` table): each runs on the hardened
    /// app, which must pass, and once per bug, which must fail exactly its listed expectations.
    /// Default: every scenario in the scenarios dir that declares `[catches]`.
    Prove {
        scenarios: Vec<String>,
        #[command(flatten)]
        deploy: Deploy,
    },
    /// Run several scenarios one after another (default: all in the scenarios dir), each against
    /// its stored baseline if any; one summary table, one junit.xml. Exit 1 if an expectation
    /// failed.
    Suite {
        scenarios: Vec<String>,
        /// Switch a bug back on in every run (repeatable).
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Store each passing run's report.json as its scenario's baseline.
        #[arg(long)]
        save_baselines: bool,
        #[command(flatten)]
        deploy: Deploy,
    },
    /// Remove what dead runs left behind: local processes, mounts and work dirs, and, with
    /// `--platform kind|kubernetes`, the namespaces of runs whose harness is gone (by label).
    Clean {
        #[command(flatten)]
        on: Where,
    },
    /// Print the Kubernetes objects of a run of a system file (what `--platform kind` applies),
    /// as one YAML stream.
    Manifests {
        system: PathBuf,
        #[arg(long, default_value = "brownout")]
        namespace: String,
        /// Bug switches to render into the services' bug variables.
        #[arg(long = "bug")]
        bugs: Vec<String>,
    },
    /// Check scenario files (and their system files) without running anything.
    Validate {
        /// Files or directories; default: the scenarios dir.
        paths: Vec<PathBuf>,
        #[arg(long, env = "BROWNOUT_SCENARIOS", default_value = "scenarios")]
        scenarios_dir: PathBuf,
    },
    /// Summarize many runs: verdicts per scenario × bugs, the smallest margin per expectation and
    /// which alert rules fired where, from every report.json below a directory (e.g. what `just
    /// stability` wrote). Exit 1 when an expectation's verdict changed between runs.
    Summarize { dir: PathBuf },
    /// Run a game day: deploy SYSTEM under steady load and keep it up while faults are injected
    /// and healed by hand (a live page and control API on 127.0.0.1), until stopped; or act on
    /// the running one: inject, heal, rate, note, status, stop.
    Gameday(gameday::GamedayCmd),
    /// Write a scenario from an incident: its fault, how long it lasted, what clients sent and
    /// which alert should have paged, on the system file of your app; the expectations a serious
    /// team holds for that kind of fault are filled in (and commented), and the file validated.
    New(new::NewArgs),
    /// List the scenarios with a one-line summary each.
    List {
        #[arg(long, env = "BROWNOUT_SCENARIOS", default_value = "scenarios")]
        scenarios_dir: PathBuf,
    },
}

/// Where scenarios are read, reports written and systems deployed (run, prove, suite).
#[derive(clap::Args)]
struct Deploy {
    #[arg(long, env = "BROWNOUT_SCENARIOS", default_value = "scenarios")]
    scenarios_dir: PathBuf,
    #[arg(long, env = "BROWNOUT_REPORTS", default_value = "reports")]
    reports_dir: PathBuf,
    #[command(flatten)]
    on: Where,
    /// `--platform kind`: the base image of the images built from kind-config/ (default:
    /// the Dockerfiles' debian:bookworm-slim; brownout/base:bookworm where no registry is
    /// reachable, made by scripts/base-image.sh).
    #[arg(long, env = "BROWNOUT_IMAGE_BASE")]
    image_base: Option<String>,
}

impl Deploy {
    /// Checks the platform flags and opens a session on that platform.
    fn session(self) -> Result<Session, BrownoutError> {
        self.on.preflight()?;
        let on = match self.on.platform {
            PlatformChoice::Local => On::Local,
            PlatformChoice::Kind => On::Kind {
                base: self.image_base,
            },
            PlatformChoice::Kubernetes => On::Context(self.on.context.unwrap_or_default()),
        };
        Session::new(on, self.reports_dir)
    }

    /// The named scenarios (names in the scenarios dir, or paths), all loaded and checked
    /// before anything runs; none named: every file in the scenarios dir, filtered by `keep`.
    fn scenarios(
        &self,
        names: &[String],
        keep: impl Fn(&spec::Scenario) -> bool,
    ) -> Result<Vec<spec::Scenario>, BrownoutError> {
        if names.is_empty() {
            let mut all = Vec::new();
            for p in spec::scenario_paths(&self.scenarios_dir)? {
                let s = spec::load_scenario(&p)?;
                if keep(&s) {
                    all.push(s);
                }
            }
            if all.is_empty() {
                return Err(BrownoutError::BadInput(format!(
                    "{}: no scenario to run here",
                    self.scenarios_dir.display()
                )));
            }
            return Ok(all);
        }
        names
            .iter()
            .map(|n| spec::load_scenario(&spec::resolve_scenario(n, &self.scenarios_dir)?))
            .collect()
    }
}

/// Which platform a command acts on, and the consent another cluster needs.
#[derive(clap::Args)]
struct Where {
    /// Where the system runs.
    #[arg(long, value_enum, default_value = "local")]
    platform: PlatformChoice,
    /// The kubeconfig context (`--platform kubernetes`).
    #[arg(long)]
    context: Option<String>,
    /// Consent to deploy to and inject faults into this cluster: the context's name again.
    #[arg(long)]
    allow_cluster: Option<String>,
}

impl Where {
    fn preflight(&self) -> Result<(), BrownoutError> {
        platform::kube::preflight(
            self.platform,
            self.context.as_deref(),
            self.allow_cluster.as_deref(),
        )
    }
}

impl Cli {
    /// Runs the command; errors carry their own exit code.
    pub fn run(self) -> Result<Exit, BrownoutError> {
        match self.command {
            Command::Validate {
                paths,
                scenarios_dir,
            } => validate(paths, &scenarios_dir),
            Command::List { scenarios_dir } => list(&scenarios_dir),
            Command::New(args) => new::new(args),
            Command::Gameday(cmd) => gameday::run(cmd),
            Command::Summarize { dir } => summarize(&dir),
            Command::Manifests {
                system,
                namespace,
                bugs,
            } => manifests(&system, &namespace, bugs),
            Command::Run {
                scenario,
                bugs,
                system,
                baseline,
                save_baseline,
                deploy,
            } => {
                // Leftovers of a harness that was killed (kill -9) go before anything else.
                platform::sweep_leftovers();
                let path = spec::resolve_scenario(&scenario, &deploy.scenarios_dir)?;
                let scenario = spec::load_scenario_on(&path, system.as_deref())?;
                spec::check_bugs(&scenario.system, &bugs)?;
                let session = deploy.session()?;
                let baseline = session.baseline(&scenario, baseline.as_deref())?;
                let outcome = session.run(&scenario, bugs, baseline)?;
                if save_baseline {
                    session::save_baseline(&session.reports_dir, &outcome);
                }
                match outcome.error {
                    Some(e) => Err(e),
                    None if outcome.report.verdict == crate::report::RunVerdict::Pass => {
                        Ok(Exit::Pass)
                    }
                    None => Ok(Exit::Fail),
                }
            }
            Command::Prove { scenarios, deploy } => {
                platform::sweep_leftovers();
                let named = !scenarios.is_empty();
                let list = deploy.scenarios(&scenarios, |s| named || s.declares_catches)?;
                let session = deploy.session()?;
                prove::prove(&session, &list)
            }
            Command::Suite {
                scenarios,
                bugs,
                save_baselines,
                deploy,
            } => {
                platform::sweep_leftovers();
                let list = deploy.scenarios(&scenarios, |_| true)?;
                let session = deploy.session()?;
                suite::suite(&session, &list, &bugs, save_baselines)
            }
            Command::Clean { on } => {
                platform::sweep_leftovers();
                if on.platform == PlatformChoice::Local {
                    println!("local leftovers swept");
                    return Ok(Exit::Pass);
                }
                on.preflight()?;
                // kind's own cluster, or (only for --platform kubernetes) the context's.
                let context = (on.platform == PlatformChoice::Kubernetes)
                    .then_some(on.context)
                    .flatten();
                let runtime = tokio::runtime::Runtime::new().map_err(|e| {
                    BrownoutError::Environment(format!("cannot start the async runtime: {e}"))
                })?;
                let deleted = runtime.block_on(platform::kube::clean(context.as_deref()))?;
                for ns in &deleted {
                    println!("deleted namespace {ns}");
                }
                println!("{} namespaces of dead runs deleted", deleted.len());
                Ok(Exit::Pass)
            }
        }
    }
}

fn manifests(
    system: &std::path::Path,
    namespace: &str,
    bugs: Vec<String>,
) -> Result<Exit, BrownoutError> {
    let system = spec::load_system(system)?;
    spec::check_bugs(&system, &bugs)?;
    let mut opts = platform::kube::render::RenderOptions::new(namespace, namespace);
    opts.bugs = bugs;
    opts.proxy_token = "<set at run time>".into();
    let objects = platform::kube::render::render(&system, &opts)?;
    print!("{}", platform::kube::render::to_yaml(&objects)?);
    Ok(Exit::Pass)
}

fn summarize(dir: &std::path::Path) -> Result<Exit, BrownoutError> {
    let (summaries, errors) = crate::summary::summarize(dir);
    for e in &errors {
        eprintln!("brownout: not a report: {e}");
    }
    if summaries.is_empty() {
        return Err(BrownoutError::BadInput(format!(
            "{}: no report.json below it (run scenarios with --reports-dir {} first)",
            dir.display(),
            dir.display()
        )));
    }
    print!("{}", crate::summary::render(&summaries));
    // Which alert rules these runs proved (a note, not a verdict: a few runs need not cover all).
    let (coverage, _) = crate::coverage::from_dir(dir);
    print!("{}", crate::coverage::render(&coverage));
    for p in crate::coverage::problems(&coverage) {
        println!("note: {p}");
    }
    // Failing every time is a verdict (a bug caught); changing between runs is not.
    let flaky = crate::summary::flaky(&summaries);
    if !errors.is_empty() {
        // Summarized without them, but a file that is no report is bad input, not a verdict.
        return Err(BrownoutError::BadInput(format!(
            "{} of the report.json files below {} could not be read as reports (named above): remove or replace them",
            errors.len(),
            dir.display()
        )));
    }
    if flaky.is_empty() {
        println!("verdicts stable: every expectation gave the same verdict in every run");
        Ok(Exit::Pass)
    } else {
        println!("verdicts NOT stable: {}", flaky.join("; "));
        Ok(Exit::Fail)
    }
}

fn validate(paths: Vec<PathBuf>, scenarios_dir: &std::path::Path) -> Result<Exit, BrownoutError> {
    let paths = if paths.is_empty() {
        vec![scenarios_dir.to_path_buf()]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let found = spec::scenario_paths(&p)?;
            if found.is_empty() {
                return Err(BrownoutError::BadInput(format!(
                    "{}: no scenario files (*.toml) in this directory: nothing to validate",
                    p.display()
                )));
            }
            files.extend(found);
        } else {
            files.push(p);
        }
    }
    let mut bad = 0;
    for f in &files {
        match spec::load_scenario(f) {
            Ok(s) => println!(
                "ok    {} ({}, {} phases, {} expectations)",
                f.display(),
                s.name,
                s.phases.len(),
                s.expectations.len()
            ),
            Err(e) => {
                bad += 1;
                println!("error {e}");
            }
        }
    }
    if bad > 0 {
        eprintln!("brownout: {bad} of {} files have errors", files.len());
        return Ok(Exit::BadInput);
    }
    Ok(Exit::Pass)
}

/// Lists the valid scenarios; an invalid one is reported as an error (exit 2), so a typo in a
/// scenario file is never hidden behind a list that looks fine.
fn list(scenarios_dir: &std::path::Path) -> Result<Exit, BrownoutError> {
    let paths = spec::scenario_paths(scenarios_dir)?;
    if paths.is_empty() {
        return Err(BrownoutError::BadInput(format!(
            "{}: no scenario files (*.toml) in this directory",
            scenarios_dir.display()
        )));
    }
    let mut bad = 0;
    for f in paths {
        match spec::load_scenario(&f) {
            Ok(s) => println!("{:<20} {}", s.name, s.summary),
            Err(e) => {
                bad += 1;
                eprintln!("error {e}");
            }
        }
    }
    if bad > 0 {
        eprintln!("brownout: {bad} scenario files have errors (brownout validate shows them all)");
        return Ok(Exit::BadInput);
    }
    Ok(Exit::Pass)
}
