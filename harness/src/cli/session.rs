//! One invocation's runs: the async runtime, the Ctrl-C handler (first: stop and tear down
//! cleanly; second: exit at once) and where runs deploy, shared by `run`, `prove` and `suite`,
//! which run scenarios one after another in this process. Also where baselines are looked up and
//! saved.

use crate::error::{BrownoutError, Exit, Result};
use crate::judge::regression::{self, Baseline};
use crate::platform;
use crate::report::RunVerdict;
use crate::runner::{self, RunOptions, RunOutcome};
use crate::spec::Scenario;
use std::path::{Path, PathBuf};
use tokio::sync::watch;

/// Where runs deploy.
#[derive(Clone)]
pub enum On {
    Local,
    Kind { base: Option<String> },
    Context(String),
}

pub struct Session {
    runtime: Option<tokio::runtime::Runtime>,
    cancel: watch::Receiver<bool>,
    bin_dir: PathBuf,
    on: On,
    pub reports_dir: PathBuf,
}

impl Session {
    /// Installs the Ctrl-C handler (once per process) and starts the runtime. (The commands
    /// sweep what killed harnesses left behind first.)
    pub fn new(on: On, reports_dir: PathBuf) -> Result<Session> {
        let bin_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.to_path_buf()))
            .ok_or_else(|| {
                BrownoutError::Environment(
                    "cannot find the directory of the brownout binary".into(),
                )
            })?;
        let (cancel_tx, cancel) = watch::channel(false);
        let interrupted = std::sync::atomic::AtomicBool::new(false);
        // First Ctrl-C (or SIGTERM): stop the load and tear down cleanly. Second: exit at once;
        // the children die with us (parent-death signal) and the next run sweeps the work dir.
        ctrlc::set_handler(move || {
            if interrupted.swap(true, std::sync::atomic::Ordering::SeqCst) {
                eprintln!("\nbrownout: second interrupt, exiting now");
                std::process::exit(Exit::Interrupted as i32);
            }
            eprintln!("\nbrownout: interrupted, cleaning up (press Ctrl-C again to exit at once)");
            let _ = cancel_tx.send(true);
        })
        .map_err(|e| {
            BrownoutError::Environment(format!("cannot install the Ctrl-C handler: {e}"))
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| {
                BrownoutError::Environment(format!("cannot start the async runtime: {e}"))
            })?;
        Ok(Session {
            runtime: Some(runtime),
            cancel,
            bin_dir,
            on,
            reports_dir,
        })
    }

    /// Ctrl-C was pressed: start no further run.
    pub fn interrupted(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Runs one scenario; its report is written also when it is aborted (`RunOutcome::error`).
    pub fn run(
        &self,
        scenario: &Scenario,
        bugs: Vec<String>,
        baseline: Option<Baseline>,
    ) -> Result<RunOutcome> {
        let opts = RunOptions {
            bugs,
            reports_dir: self.reports_dir.clone(),
            bin_dir: self.bin_dir.clone(),
            baseline,
        };
        let target = match &self.on {
            On::Local => None,
            On::Kind { base } => Some(platform::kube::cluster::Target::Kind {
                root: platform::kube::repository_root(&opts.bin_dir)?,
                base: base.clone(),
            }),
            On::Context(context) => Some(platform::kube::cluster::Target::Context(context.clone())),
        };
        let cancel = self.cancel.clone();
        let runtime = self.runtime.as_ref().expect("runtime until drop");
        runtime.block_on(async {
            match target {
                None => {
                    let mut platform = platform::embedded();
                    runner::run(scenario, &mut platform, &opts, cancel).await
                }
                Some(target) => {
                    let mut platform = platform::kube::cluster::KubePlatform::new(target);
                    runner::run(scenario, &mut platform, &opts, cancel).await
                }
            }
        })
    }

    /// Runs a game day (local platform; the Kubernetes platforms do not run game days yet).
    pub fn gameday(
        &self,
        gd: crate::gameday::Gameday,
        mut opts: crate::gameday::GamedayOptions,
    ) -> Result<RunOutcome> {
        if !matches!(self.on, On::Local) {
            return Err(BrownoutError::BadInput(
                "game days run on the local platform only for now (--platform local)".into(),
            ));
        }
        opts.bin_dir = self.bin_dir.clone();
        opts.reports_dir = self.reports_dir.clone();
        let cancel = self.cancel.clone();
        let runtime = self.runtime.as_ref().expect("runtime until drop");
        runtime.block_on(async {
            let mut platform = platform::embedded();
            crate::gameday::run(gd, &mut platform, &opts, cancel).await
        })
    }

    /// The baseline to compare a run of `scenario` with: `explicit` (an error if unreadable),
    /// else `<reports>/<scenario>/baseline.json` if there is one.
    pub fn baseline(
        &self,
        scenario: &Scenario,
        explicit: Option<&Path>,
    ) -> Result<Option<Baseline>> {
        match explicit {
            Some(path) => regression::load(path, &scenario.name).map(Some),
            None => {
                let stored = baseline_path(&self.reports_dir, &scenario.name);
                // Anything at that path is read (and refused if it is no file), never skipped.
                if crate::spec::source::describe(&stored).is_some() {
                    regression::load(&stored, &scenario.name).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Give the runtime a moment to finish supervisor tasks; children are already stopped.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// Where a scenario's stored baseline lives.
pub fn baseline_path(reports_dir: &Path, scenario: &str) -> PathBuf {
    reports_dir.join(scenario).join("baseline.json")
}

/// Stores a passing run's report.json as its scenario's baseline; a failing or aborted run is
/// not a baseline (said, and nothing stored).
pub fn save_baseline(reports_dir: &Path, outcome: &RunOutcome) {
    if outcome.report.verdict != RunVerdict::Pass {
        eprintln!(
            "brownout: not saved as the baseline: the run did not pass ({})",
            outcome.report.verdict
        );
        return;
    }
    let to = baseline_path(reports_dir, &outcome.report.scenario);
    match std::fs::copy(outcome.report_dir.join("report.json"), &to) {
        Ok(_) => println!("baseline saved: {}", to.display()),
        Err(e) => eprintln!("brownout: cannot save the baseline {}: {e}", to.display()),
    }
}
