//! The phases of a game day's report are its fault windows: every change of the set of active
//! faults starts a new phase, named after the faults in it (`slow-pay`, `slow-pay+db-lock`) or
//! `steady`, `steady-2`, … when none is active. Names are unique, so expectations and reports can
//! refer to them.

use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub struct Windows {
    used: BTreeSet<String>,
    steady: usize,
}

impl Windows {
    /// The name of the window that begins now, with `active` faults (in injection order).
    pub fn next(&mut self, active: &[&str]) -> String {
        let base = if active.is_empty() {
            self.steady += 1;
            if self.steady == 1 {
                "steady".to_string()
            } else {
                format!("steady-{}", self.steady)
            }
        } else {
            active.join("+")
        };
        let mut name = base.clone();
        let mut n = 2;
        while self.used.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

/// A fault's name when none was given: its kind and a number (`proxy-1`), safe as a phase name.
pub fn default_name(kind: &str, taken: &dyn Fn(&str) -> bool) -> String {
    (1..)
        .map(|n| format!("{kind}-{n}"))
        .find(|n| !taken(n))
        .unwrap_or_else(|| kind.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_named_by_their_faults_and_never_twice() {
        let mut w = Windows::default();
        assert_eq!(w.next(&[]), "steady");
        assert_eq!(w.next(&["slow-pay"]), "slow-pay");
        assert_eq!(w.next(&["slow-pay", "db"]), "slow-pay+db");
        assert_eq!(w.next(&["db"]), "db");
        assert_eq!(w.next(&[]), "steady-2");
        // The same fault name injected again (after a heal) gets a new window name.
        assert_eq!(w.next(&["slow-pay"]), "slow-pay-2");
        assert_eq!(w.next(&["slow-pay"]), "slow-pay-3");
    }

    #[test]
    fn default_fault_names_skip_the_taken_ones() {
        assert_eq!(default_name("proxy", &|n| n == "proxy-1"), "proxy-2");
        assert_eq!(default_name("disk-full", &|_| false), "disk-full-1");
    }
}
