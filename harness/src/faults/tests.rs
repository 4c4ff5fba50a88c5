//! The registry is complete: every [`FaultSpec`] variant is a kind of [`KINDS`], and every kind's
//! example is a fault of that kind that passes its own checks on a system with every target.

use super::kind::testkit;
use super::*;

#[derive(serde::Deserialize)]
struct Wrapper {
    #[allow(dead_code)]
    fault: FaultSpec,
}

/// The kinds serde knows (the variants of [`FaultSpec`]), as its error for an unknown one lists
/// them.
fn serde_kinds() -> Vec<String> {
    let e = toml::from_str::<Wrapper>("fault = { kind = \"?\" }")
        .err()
        .expect("an unknown kind is refused")
        .to_string();
    let list = e
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("{e}"));
    list.split(", ")
        .map(|k| k.trim().trim_matches('`').to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

#[test]
fn every_fault_kind_is_registered_once() {
    let serde = serde_kinds();
    let registered: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
    assert_eq!(serde.len(), registered.len(), "{serde:?} vs {registered:?}");
    for k in &serde {
        assert!(registered.contains(&k.as_str()), "{k} is not in KINDS");
    }
}

#[test]
fn every_kind_has_an_example_of_itself_that_passes_its_checks() {
    let system = testkit::system();
    for k in KINDS {
        let text = (k.example)(&system).unwrap_or_else(|| panic!("{}: no example", k.name));
        let f: FaultSpec = toml::from_str::<toml::Table>(&format!("fault = {{ {text} }}"))
            .and_then(|t| t["fault"].clone().try_into())
            .unwrap_or_else(|e| panic!("{}: {text}: {e}", k.name));
        assert_eq!(f.kind(), k.name);
        f.fault()
            .check(&system)
            .unwrap_or_else(|p| panic!("{}: {p:?}", k.name));
        let requests = [kind::RequestFacts {
            name: requests::EXAMPLE_REQUEST.into(),
            during: vec!["fault".into()],
        }];
        f.fault()
            .check_targets(&system, &requests, "fault")
            .unwrap_or_else(|p| panic!("{}: {p}", k.name));
    }
}

#[test]
fn a_kind_is_offered_only_where_the_system_has_its_target() {
    let bare = kind::SystemFacts::default();
    for k in KINDS {
        assert!((k.catalogue)(&bare).is_none(), "{}", k.name);
    }
    let system = testkit::system();
    let offered: Vec<&str> = KINDS
        .iter()
        .filter(|k| (k.catalogue)(&system).is_some())
        .map(|k| k.name)
        .collect();
    // Every kind but `requests` (a game day's load is fixed when it starts).
    assert_eq!(offered.len(), KINDS.len() - 1, "{offered:?}");
    assert!(!offered.contains(&"requests"));
}
