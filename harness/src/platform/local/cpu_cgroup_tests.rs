//! CPU cgroups for real: a busy process under a quota is throttled by the kernel, and not after
//! the quota is lifted.

use super::*;
use std::time::Duration;

#[test]
fn nr_throttled_is_read_from_cpu_stat() {
    let v1 = "nr_periods 40\nnr_throttled 12\nthrottled_time 1000\n";
    let v2 = "usage_usec 1\nuser_usec 1\nsystem_usec 0\nnr_periods 9\nnr_throttled 7\nthrottled_usec 5\n";
    assert_eq!(throttled_count(v1), 12);
    assert_eq!(throttled_count(v2), 7);
    assert_eq!(throttled_count("nr_periods 3\n"), 0);
    assert_eq!(quota_us(200), 20_000);
    assert_eq!(quota_us(10), 1_000);
}

/// CPU time (user + system) the process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap_or(100) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// A real cgroup with a real quota: a busy loop moved into it gets about a tenth of a CPU, the
/// kernel counts the periods it throttled it in, and once the quota is lifted (`max`) it is
/// throttled no more. Needs root and a cpu controller.
#[test]
fn a_busy_process_under_a_quota_is_throttled_until_it_is_lifted() {
    let cg = match CpuCgroups::create() {
        Ok(c) => c,
        Err(e) if !nix::unistd::geteuid().is_root() => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let dir = cg.replica("busy").unwrap();
    assert_eq!(cg.quota(&dir).unwrap(), None, "no limit at first");
    cg.set_limit(&dir, Some(100)).unwrap();
    assert_eq!(
        cg.quota(&dir).unwrap(),
        Some(10_000),
        "0.1 CPU: 10 ms per 100 ms"
    );
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && exec sh -c 'while :; do :; done'",
            dir.join("cgroup.procs").display()
        ))
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(100));
    let (used_before, throttled_before) = (cpu_time(pid), throttled_in(&dir));
    let wall = Duration::from_millis(1500);
    std::thread::sleep(wall);
    let used = cpu_time(pid) - used_before;
    let throttled = throttled_in(&dir) - throttled_before;
    // 0.1 CPU over 1.5 s is 150 ms; unlimited, a busy loop takes what a core gives it.
    assert!(
        used < Duration::from_millis(400),
        "{used:?} of CPU in {wall:?} under 0.1 CPU"
    );
    assert!(throttled >= 5, "throttled in {throttled} periods");

    cg.set_limit(&dir, None).unwrap();
    assert_eq!(cg.quota(&dir).unwrap(), None, "lifted: max");
    std::thread::sleep(Duration::from_millis(200));
    let after = throttled_in(&dir);
    let used_before = cpu_time(pid);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(throttled_in(&dir), after, "no throttling without a quota");
    let used = cpu_time(pid) - used_before;
    assert!(
        used > Duration::from_millis(100),
        "{used:?} of CPU in 500 ms without a limit"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let run_dir = cg.run_dir.clone();
    drop(cg);
    assert!(!run_dir.exists(), "cgroups removed");
}
