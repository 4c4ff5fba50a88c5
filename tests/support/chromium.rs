//! Opens a page in headless Chromium or Chrome ([`chromium`] finds it) and reports what it
//! rendered: the DOM after its scripts ran, the console errors, and a screenshot. Tests that need
//! it fail (not skip) when no browser runs, naming the fix.

use std::path::Path;
use std::process::Command;

pub struct Rendered {
    /// The serialized DOM after the page's scripts ran.
    pub dom: String,
    /// Console errors and uncaught exceptions Chromium logged.
    pub console_errors: Vec<String>,
}

/// The headless browser on this machine: `BROWNOUT_CHROME` if set (it must run), else the first of
/// Google Chrome (GitHub's runners ship it), Debian's `chromium`, Ubuntu's `chromium-browser` that
/// really runs headless (Ubuntu's chromium packages are wrappers for a snap, which fail without
/// snapd). `scripts/install-deps.sh page` looks for it the same way.
pub fn chromium() -> String {
    static FOUND: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let runs = |c: &str| {
                Command::new(c)
                    .args(["--headless", "--no-sandbox", "--disable-gpu", "--version"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            };
            if let Ok(c) = std::env::var("BROWNOUT_CHROME") {
                assert!(
                    runs(&c),
                    "BROWNOUT_CHROME={c} does not run `--headless --version`: point it at a \
                     working Chrome or Chromium"
                );
                return c;
            }
            [
                "google-chrome",
                "google-chrome-stable",
                "chromium",
                "chromium-browser",
            ]
            .into_iter()
            .find(|c| runs(c))
            .unwrap_or_else(|| {
                panic!(
                    "no headless Chrome or Chromium runs here: `./just deps page` installs one \
                     (or set BROWNOUT_CHROME)"
                )
            })
            .to_string()
        })
        .clone()
}

fn run(page: &Path, extra: &[String]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1400,2600",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(format!(
        "file://{}",
        std::path::absolute(page).unwrap().display()
    ));
    cmd.output().expect("run chromium")
}

/// Renders `page`; with `screenshot`, also writes a PNG of it there.
pub fn render(page: &Path, screenshot: Option<&Path>) -> Rendered {
    let out = run(page, &["--dump-dom".to_string()]);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console_errors = stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE")
                && (l.contains("Uncaught") || l.contains(":ERROR:") || l.contains("Error"))
        })
        .map(|l| l.to_string())
        .collect();
    if let Some(png) = screenshot {
        let out = run(page, &[format!("--screenshot={}", png.display())]);
        assert!(
            out.status.success() && png.is_file(),
            "no screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Rendered {
        dom: String::from_utf8_lossy(&out.stdout).to_string(),
        console_errors,
    }
}

/// What a Brownout report page must show once its scripts ran, or why it does not.
pub fn problems_of_report_page(r: &Rendered) -> Vec<String> {
    let mut p: Vec<String> = r
        .console_errors
        .iter()
        .map(|e| format!("console: {e}"))
        .collect();
    if r.dom.contains("data-js-error") {
        p.push("the page's script threw (data-js-error set)".into());
    }
    if !r.dom.contains("data-rendered=\"ok\"") {
        p.push("the page's script did not finish (no data-rendered=\"ok\")".into());
    }
    for (what, needle) in [
        ("the verdict", "id=\"verdict\""),
        ("the expectation table", "id=\"expectations\""),
        ("the margins table", "id=\"margins\""),
        ("status mix bars", "class=\"bar ok\""),
        ("a fault window", "class=\"fault-window\""),
        ("the p99 line", "class=\"latency p99\""),
        ("readiness states", "class=\"state\""),
        ("lifecycle events", "class=\"event "),
    ] {
        if !r.dom.contains(needle) {
            p.push(format!("missing {what} ({needle})"));
        }
    }
    p
}
