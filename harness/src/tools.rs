//! Finding the system programs Brownout runs (PostgreSQL, nginx, mtail, Prometheus, promtool). A missing one is
//! an environment error (exit code 3) that names the command that installs it.

use crate::error::BrownoutError;
use std::path::{Path, PathBuf};

/// A system program and where to look for it beyond `PATH`.
pub struct Program {
    pub name: &'static str,
    /// Debian/Ubuntu package that provides it.
    pub package: &'static str,
    /// Extra directories (globs are not used: each entry is checked as is, newest version first).
    pub extra_dirs: fn() -> Vec<PathBuf>,
}

fn postgres_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    // Newest major version first.
    dirs.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    dirs
}

fn none() -> Vec<PathBuf> {
    vec![PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")]
}

pub const POSTGRES: Program = Program {
    name: "postgres",
    package: "postgresql",
    extra_dirs: postgres_dirs,
};
pub const INITDB: Program = Program {
    name: "initdb",
    package: "postgresql",
    extra_dirs: postgres_dirs,
};
pub const NGINX: Program = Program {
    name: "nginx",
    package: "nginx-light",
    extra_dirs: none,
};
pub const PROMETHEUS: Program = Program {
    name: "prometheus",
    package: "prometheus",
    extra_dirs: none,
};
/// The edge exporter: turns the ingress's access log into per-status metrics.
pub const MTAIL: Program = Program {
    name: "mtail",
    package: "mtail",
    extra_dirs: none,
};
pub const PROMTOOL: Program = Program {
    name: "promtool",
    package: "prometheus",
    extra_dirs: none,
};

/// The command that installs the given programs' packages on Debian/Ubuntu.
pub fn install_hint(programs: &[&Program]) -> String {
    let mut pkgs: Vec<&str> = programs.iter().map(|p| p.package).collect();
    pkgs.dedup();
    format!(
        "install it with: sudo apt-get install -y --no-install-recommends {}   (or run: scripts/install-deps.sh)",
        pkgs.join(" ")
    )
}

/// Finds `program`: the `BROWNOUT_<NAME>` variable, then `PATH`, then the program's extra dirs.
pub fn find(program: &Program) -> Result<PathBuf, BrownoutError> {
    let var = format!("BROWNOUT_{}", program.name.to_uppercase());
    if let Some(p) = std::env::var_os(&var) {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(BrownoutError::Environment(format!(
                "{var} points at {}, which is not an executable file",
                p.display()
            )))
        };
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    // For PostgreSQL prefer the versioned server directory: /usr/bin holds only client wrappers.
    let extra = (program.extra_dirs)();
    let dirs = if program.package == "postgresql" {
        extra.into_iter().chain(path_dirs).collect::<Vec<_>>()
    } else {
        path_dirs.into_iter().chain(extra).collect()
    };
    dirs.iter()
        .map(|d| d.join(program.name))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            BrownoutError::Environment(format!(
                "required program '{}' was not found on PATH; {}",
                program.name,
                install_hint(&[program])
            ))
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it next).
pub fn free_port() -> Result<u16, BrownoutError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| {
            BrownoutError::Environment(format!("cannot find a free port on 127.0.0.1: {e}"))
        })
}
