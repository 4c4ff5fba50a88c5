//! JUnit XML (with nextest's `quick-junit`) for CI test-report views: a test suite per scenario
//! run, a test case per expectation whose failure message is the evidence; an aborted run is one
//! errored test case with the reason.

use super::Report;
use super::RunVerdict;
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// "sigterm-grace" or "sigterm-grace [bug no-drain]".
pub fn suite_name(scenario: &str, bugs: &[String]) -> String {
    if bugs.is_empty() {
        scenario.to_string()
    } else {
        format!("{scenario} [bug {}]", bugs.join(", "))
    }
}

/// One run as a test suite.
pub fn suite(r: &Report) -> TestSuite {
    let name = suite_name(&r.scenario, &r.bugs);
    let mut suite = TestSuite::new(name.clone());
    suite.set_time(Duration::from_secs_f64(r.wall_time_s.max(0.0)));
    if r.verdict == RunVerdict::Aborted {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_message(format!("aborted: {}", r.aborted.as_deref().unwrap_or("")));
        status.set_type("aborted");
        let mut case = TestCase::new("run", status);
        case.set_classname(name.clone());
        suite.add_test_case(case);
    }
    for v in &r.expectations {
        let status = if v.passed {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(v.evidence.clone());
            s.set_type(v.kind.clone());
            s.set_description(format!(
                "{}\nsmallest margin: {}",
                v.evidence,
                v.margin_text()
            ));
            s
        };
        let mut case = TestCase::new(v.id.clone(), status);
        case.set_classname(name.clone());
        if v.passed {
            case.set_system_out(v.evidence.clone());
        }
        suite.add_test_case(case);
    }
    suite
}

/// The XML document of `suites`.
pub fn render(name: &str, suites: Vec<TestSuite>) -> String {
    let mut report = quick_junit::Report::new(name);
    report.add_test_suites(suites);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot serialize the JUnit report: {e} -->\n"))
}
