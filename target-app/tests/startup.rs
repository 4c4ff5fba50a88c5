//! Startup validation: each required variable missing → exit 1 with one clear line, before the port
//! is bound; an unknown bug name is a startup error too.

mod support;
use std::process::Command;
use support::CHECKOUT;

fn run_without(missing: &str, extra: &[(&str, &str)]) -> (Option<i32>, String, u16) {
    let port = support::free_port();
    let receipts = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(CHECKOUT);
    cmd.env_clear()
        .env("DATABASE_URL", "postgres://u@127.0.0.1:1/db")
        .env("PAYMENTS_URL", "http://127.0.0.1:1")
        .env("RECEIPTS_DIR", receipts.path())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env_remove(missing);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run checkout");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        port,
    )
}

#[test]
fn each_missing_required_variable_exits_1_naming_it() {
    for var in ["DATABASE_URL", "PAYMENTS_URL", "RECEIPTS_DIR"] {
        let (code, stderr, port) = run_without(var, &[]);
        assert_eq!(code, Some(1), "{var}: {stderr}");
        assert_eq!(
            stderr.trim(),
            format!("startup failed: required environment variable {var} is not set"),
        );
        // It exited before binding: the port is still free.
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}

#[test]
fn invalid_values_and_unknown_bugs_exit_1_naming_them() {
    let (code, stderr, _) = run_without("NONE", &[("DATABASE_URL", "mysql://x")]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("DATABASE_URL has an invalid value"),
        "{stderr}"
    );
    let (code, stderr, _) = run_without("NONE", &[("CHECKOUT_BUGS", "no-drain,made-up")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("unknown bug 'made-up'"), "{stderr}");
}
