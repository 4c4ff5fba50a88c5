//! What every benchmark part shares: where things are, child processes measured by the kernel
//! (CPU and peak RSS from `wait4`, or from `/proc` while they run), medians, and the table rows.

use serde::Serialize;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The workspace root (the bench runs from `harness/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A release binary of the workspace (`just bench` builds them first).
pub fn release_bin(name: &str) -> PathBuf {
    let path = root().join("target/release").join(name);
    if !path.exists() {
        fail(&format!(
            "{} is missing: run `cargo build --workspace --bins --release` first (`just bench` does)",
            path.display()
        ));
    }
    path
}

/// A program the benchmark compares with, from the system (installed by scripts/install-deps.sh).
pub fn system_program(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = PathBuf::from(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    fail(&format!(
        "{name} is not installed: run scripts/install-deps.sh (or apt-get install {name})"
    ))
}

/// Stops the benchmark with a message (exit 3: the environment is missing something).
pub fn fail(msg: &str) -> ! {
    eprintln!("bench: {msg}");
    std::process::exit(3)
}

/// The runtime a run's session builds (cli/session.rs): two workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start a tokio runtime: {e}")))
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    harness::tools::free_port().unwrap_or_else(|e| fail(&e.to_string()))
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, what: &str) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    fail(&format!(
        "{what} did not listen on 127.0.0.1:{port} within 5 s"
    ))
}

/// CPU time (user + system) a running process has used so far, from /proc/PID/stat.
pub fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// What the kernel says a finished child used.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    pub cpu_s: f64,
    pub max_rss_mb: f64,
    pub success: bool,
}

/// Waits for `child` with `wait4`, which gives its own CPU time and peak RSS (and those of any
/// children it waited for: the load drivers have none).
pub fn wait_usage(child: &mut Child) -> Usage {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not yet reaped; status and ru point to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        fail(&format!("wait4({pid}) failed"));
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage {
        cpu_s: secs(ru.ru_utime) + secs(ru.ru_stime),
        max_rss_mb: ru.ru_maxrss as f64 / 1024.0,
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}

/// Runs a command to the end, its stdout captured; returns (stdout, usage).
pub fn run_measured(cmd: &mut Command) -> (String, Usage) {
    let mut child = dies_with_parent(cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot start {cmd:?}: {e}")));
    // Read the pipes before reaping (a full pipe would block the child).
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let errs = std::thread::spawn(move || {
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let _ = stdout.read_to_string(&mut out);
    let err = errs.join().unwrap_or_default();
    let usage = wait_usage(&mut child);
    if !usage.success {
        fail(&format!("{cmd:?} failed:\n{}", err.trim()));
    }
    (out, usage)
}

/// Makes the command's process die with the benchmark (SIGKILL when its parent thread goes,
/// `PR_SET_PDEATHSIG`), so a benchmark killed outright leaves no server behind.
pub fn dies_with_parent(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A child that is killed when dropped (the proxies and servers a benchmark starts).
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// One row of the printed table: what was measured, Brownout's figure, what it is compared
/// with in the same run, the target, and whether it is met.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub what: String,
    pub brownout: String,
    pub compared_with: String,
    pub target: String,
    pub met: Option<bool>,
}

impl Row {
    pub fn new(
        what: &str,
        brownout: String,
        compared_with: String,
        target: &str,
        met: Option<bool>,
    ) -> Row {
        Row {
            what: what.into(),
            brownout,
            compared_with,
            target: target.into(),
            met,
        }
    }
}

/// How long a benchmark runs: the full measurement, or a short one that only checks it still
/// runs (CI): its figures mean nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mode {
    Full,
    Quick,
}

impl Mode {
    /// `full` in the full mode, `quick` in the short one.
    pub fn pick<T>(self, full: T, quick: T) -> T {
        match self {
            Mode::Full => full,
            Mode::Quick => quick,
        }
    }
}
