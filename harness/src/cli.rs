//! The command line: `run` a scenario (on the local platform, a kind cluster or, opt-in, another
//! cluster), `clean` up after dead runs, `validate` scenario files, `list` scenarios, `summarize`
//! many runs, print a system's Kubernetes `manifests`. Each command returns an [`Exit`] (or an error, whose exit code it implies).

use crate::error::{BrownoutError, Exit};
use crate::platform::kube::PlatformChoice;
use crate::runner::{self, RunOptions};
use crate::{platform, spec};
use clap::{Parser, Subcommand};
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
    /// List the scenarios with a one-line summary each.
    List {
        #[arg(long, env = "BROWNOUT_SCENARIOS", default_value = "scenarios")]
        scenarios_dir: PathBuf,
    },
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
                scenarios_dir,
                reports_dir,
                on,
                image_base,
            } => {
                on.preflight()?;
                let on = match on.platform {
                    PlatformChoice::Local => On::Local,
                    PlatformChoice::Kind => On::Kind { base: image_base },
                    PlatformChoice::Kubernetes => On::Context(on.context.unwrap_or_default()),
                };
                run(
                    &scenario,
                    bugs,
                    system.as_deref(),
                    &scenarios_dir,
                    reports_dir,
                    on,
                )
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
    if flaky.is_empty() {
        println!("verdicts stable: every expectation gave the same verdict in every run");
        Ok(Exit::Pass)
    } else {
        println!("verdicts NOT stable: {}", flaky.join("; "));
        Ok(Exit::Fail)
    }
}

/// Where `run` deploys.
enum On {
    Local,
    Kind { base: Option<String> },
    Context(String),
}

fn run(
    name: &str,
    bugs: Vec<String>,
    system: Option<&std::path::Path>,
    scenarios_dir: &std::path::Path,
    reports_dir: PathBuf,
    on: On,
) -> Result<Exit, BrownoutError> {
    // Leftovers of a harness that was killed (kill -9) go first.
    platform::sweep_leftovers();
    let path = spec::resolve_scenario(name, scenarios_dir)?;
    let scenario = spec::load_scenario_on(&path, system)?;
    spec::check_bugs(&scenario.system, &bugs)?;
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .ok_or_else(|| {
            BrownoutError::Environment("cannot find the directory of the brownout binary".into())
        })?;
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let interrupted = std::sync::atomic::AtomicBool::new(false);
    // First Ctrl-C (or SIGTERM): stop the load and tear down cleanly. Second: exit at once; the
    // children die with us (parent-death signal) and the next run sweeps the work dir.
    ctrlc::set_handler(move || {
        if interrupted.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("\nbrownout: second interrupt, exiting now");
            std::process::exit(Exit::Interrupted as i32);
        }
        eprintln!("\nbrownout: interrupted, cleaning up (press Ctrl-C again to exit at once)");
        let _ = cancel_tx.send(true);
    })
    .map_err(|e| BrownoutError::Environment(format!("cannot install the Ctrl-C handler: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BrownoutError::Environment(format!("cannot start the async runtime: {e}")))?;
    let opts = RunOptions {
        bugs,
        reports_dir,
        bin_dir,
    };
    let kube_target = match on {
        On::Local => None,
        On::Kind { base } => Some(platform::kube::cluster::Target::Kind {
            root: platform::kube::repository_root(&opts.bin_dir)?,
            base,
        }),
        On::Context(context) => Some(platform::kube::cluster::Target::Context(context)),
    };
    let outcome = runtime.block_on(async {
        match kube_target {
            None => {
                let mut platform = platform::embedded();
                runner::run(&scenario, &mut platform, &opts, cancel_rx).await
            }
            Some(target) => {
                let mut platform = platform::kube::cluster::KubePlatform::new(target);
                runner::run(&scenario, &mut platform, &opts, cancel_rx).await
            }
        }
    });
    // Give the runtime a moment to finish supervisor tasks; children are already stopped.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    let outcome = outcome?;
    Ok(if outcome.passed {
        Exit::Pass
    } else {
        Exit::Fail
    })
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
            files.extend(spec::scenario_paths(&p)?);
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

fn list(scenarios_dir: &std::path::Path) -> Result<Exit, BrownoutError> {
    for f in spec::scenario_paths(scenarios_dir)? {
        match spec::load_scenario(&f) {
            Ok(s) => println!("{:<20} {}", s.name, s.summary),
            Err(e) => println!(
                "{:<20} (invalid: {e})",
                f.file_stem().unwrap_or_default().to_string_lossy()
            ),
        }
    }
    Ok(Exit::Pass)
}
