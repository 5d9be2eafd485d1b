//! Long-lived helper processes and scratch directories of one test binary:
//! the test-support crate's (`crates/test-support/src/process.rs`), and a
//! view of /proc.

pub use test_support::process::*;

/// One running process, as /proc shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Its pid.
    pub pid: i32,
    /// Its parent's pid (0 when /proc no longer says).
    pub ppid: i32,
    /// Its command line with the NULs as spaces (empty for kernel threads
    /// and processes that exited while being read).
    pub cmdline: String,
}

/// Every process on the machine, from /proc.
pub fn list() -> Vec<Proc> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0);
        found.push(Proc {
            pid,
            ppid,
            cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
        });
    }
    found
}
