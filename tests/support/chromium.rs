//! Opens a page in headless Chromium (Debian's `chromium`) and reports what it rendered: the DOM
//! after its scripts ran, the console errors, and a screenshot. Tests that need it fail (not skip)
//! when Chromium is missing, naming the fix.

use std::path::Path;
use std::process::Command;

pub struct Rendered {
    /// The serialized DOM after the page's scripts ran.
    pub dom: String,
    /// Console errors and uncaught exceptions Chromium logged.
    pub console_errors: Vec<String>,
}

/// The Chromium program on this machine (Debian's, Ubuntu's, or Chrome on GitHub's runners).
pub fn chromium() -> &'static str {
    // Debian's and Ubuntu's names, and the Chrome GitHub's runners ship.
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c;
        }
    }
    panic!("no chromium: install it (`./just deps` installs Debian's chromium)");
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
