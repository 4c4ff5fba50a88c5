//! The corpus of broken inputs (`tests/bad-inputs/`): one scenario file per case, each breaking
//! one thing (directly, or through the system file in `tests/bad-inputs/systems/` or the rule
//! file in `tests/bad-inputs/rules/` it names). The first line of each case says the error it
//! must produce: `# error: FILE:LINE:COL: TEXT`. `brownout validate` must exit 2 with exactly that
//! one error, never panic, and never accept the file.

mod support;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{root, BROWNOUT};

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("tests/bad-inputs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

/// `FILE:LINE:COL: TEXT` from the case's first line.
fn expected(case: &Path) -> String {
    let bytes = std::fs::read(case).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# error: "))
        .unwrap_or_else(|| panic!("{}: first line must be `# error: …`", case.display()))
        .to_string()
}

#[test]
fn every_broken_input_gets_its_one_located_error_and_exit_2() {
    let cases = cases();
    assert!(cases.len() >= 80, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let want = expected(case);
        let (place, text) = want.split_once(": ").unwrap();
        let mut parts = place.rsplitn(3, ':');
        let (col, line, file) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(
            line.parse::<u32>().is_ok() && col.parse::<u32>().is_ok(),
            "{}: `# error:` must start with FILE:LINE:COL",
            case.display()
        );
        let out = Command::new(BROWNOUT)
            .arg("validate")
            .arg(case.strip_prefix(root()).unwrap())
            .current_dir(root())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("error ")).collect();
        let located = format!("{file}:{line}:{col}: ");
        let ok = out.status.code() == Some(2)
            && errors.len() == 1
            && errors[0].contains(&located)
            && errors[0].contains(text)
            && !stderr.contains("panicked");
        if !ok {
            wrong.push(format!(
                "{}: want «{want}» and exit 2; got exit {:?}: {}{}",
                case.file_name().unwrap().to_string_lossy(),
                out.status.code(),
                stdout.trim(),
                stderr.trim()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_whole_corpus_directory_is_refused_case_by_case() {
    let out = Command::new(BROWNOUT)
        .args(["validate", "tests/bad-inputs"])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("error ")).count(),
        cases().len(),
        "{stdout}"
    );
    assert!(!stdout.lines().any(|l| l.starts_with("ok ")), "{stdout}");
}

/// The corpus's own bases are valid: each case is broken by its one change, not by its base.
#[test]
fn the_bases_the_cases_are_made_from_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let case = std::fs::read_to_string(root().join("tests/bad-inputs/rate-zero.toml")).unwrap();
    let fixed = dir.path().join("ok.toml");
    let systems = root().join("tests/bad-inputs/systems/base.toml");
    std::fs::write(
        &fixed,
        case.replace("rate = 0", "rate = 20")
            .replace("systems/base.toml", systems.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new(BROWNOUT)
        .arg("validate")
        .arg(&fixed)
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
