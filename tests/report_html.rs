//! The Chromium check that every e2e run's `report.html` goes through (`tests/e2e.rs`), shown
//! failing here: on a page whose script throws, one whose script never finishes, and one missing
//! what a report must show. Needs Debian's `chromium` (`./just deps` installs it).

#[path = "support/chromium.rs"]
mod chromium;

/// A page with every element the check looks for, its script as given.
fn page(dir: &std::path::Path, name: &str, script: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("<!DOCTYPE html><html><body>{body}<script>window.addEventListener('error', function (e) {{ document.body.dataset.jsError = String(e.message); }});{script}</script></body></html>"),
    )
    .unwrap();
    p
}

const EVERYTHING: &str = r#"<span id="verdict">PASS</span><table id="expectations"></table><table id="margins"></table><svg><rect class="bar ok"/><rect class="fault-window"/><path class="latency p99"/><rect class="state"/><rect class="event sigterm"/></svg>"#;

#[test]
fn a_page_that_renders_everything_passes_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = page(
        dir.path(),
        "ok.html",
        "document.body.dataset.rendered = 'ok';",
        EVERYTHING,
    );
    let png = dir.path().join("ok.png");
    let r = chromium::render(&p, Some(&png));
    assert_eq!(chromium::problems_of_report_page(&r), Vec::<String>::new());
    assert!(
        std::fs::metadata(&png).unwrap().len() > 1000,
        "a real screenshot"
    );
}

#[test]
fn a_script_that_throws_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = page(
        dir.path(),
        "throws.html",
        "null.x; document.body.dataset.rendered = 'ok';",
        EVERYTHING,
    );
    let problems = chromium::problems_of_report_page(&chromium::render(&p, None));
    assert!(
        problems.iter().any(|p| p.contains("data-js-error")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("did not finish")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("console:") && p.contains("Uncaught")),
        "{problems:?}"
    );
}

#[test]
fn a_page_missing_what_a_report_shows_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = page(
        dir.path(),
        "empty.html",
        "document.body.dataset.rendered = 'ok';",
        "<span id=\"verdict\">PASS</span>",
    );
    let problems = chromium::problems_of_report_page(&chromium::render(&p, None));
    assert!(
        problems.contains(&"missing the expectation table (id=\"expectations\")".to_string()),
        "{problems:?}"
    );
    assert!(
        problems.contains(&"missing a fault window (class=\"fault-window\")".to_string()),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 7, "{problems:?}");
}
