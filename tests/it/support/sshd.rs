//! A private OpenSSH server (Debian's `openssh-server`) for `ssh://` build
//! hosts: on 127.0.0.1 and a free port, with a host key, a user key and its
//! own sshd_config (no PAM, only root, only the test's authorized_keys),
//! started per test and stopped by pid when dropped.
//!
//! The remote commands (`docker system dial-stdio`, `buildctl dial-stdio`)
//! get their PATH and `DOCKER_HOST` from `environment=` options of the
//! authorized key (sshd's `PermitUserEnvironment` allows those two names).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::{self, Service};
use super::run_tool;

/// Where sshd is installed by Debian's `openssh-server`; sshd must be run
/// by its absolute path (it re-executes itself).
const SSHD: &str = "/usr/sbin/sshd";

/// One running sshd.
pub struct Sshd {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The known_hosts line for it (`[127.0.0.1]:port ssh-ed25519 ...`).
    pub known_hosts: String,
    /// The private key of the authorized user (root), OpenSSH text.
    pub user_key: String,
    /// A private key sshd does not accept.
    pub other_key: String,
    /// A known_hosts line naming this host and port with a key that is not
    /// its own.
    pub wrong_known_hosts: String,
    dir: PathBuf,
    service: Service,
}

fn keygen(path: &Path) -> (String, String) {
    run_tool(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "oci-build-test",
                "-f",
            ])
            .arg(path),
    );
    let private = std::fs::read_to_string(path).expect("private key");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    (private, public.trim().to_owned())
}

/// The first two fields of a public key line (`ssh-ed25519 AAAA...`).
fn key_fields(public: &str) -> String {
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Sshd {
    /// Starts sshd letting root in with [`Sshd::user_key`]; remote commands
    /// run with `path` as PATH and `docker_host` as DOCKER_HOST.
    pub fn start(path: &str, docker_host: &str) -> Sshd {
        assert!(
            Path::new(SSHD).is_file(),
            "needs {SSHD} (apt-get install openssh-server)"
        );
        // sshd's privilege separation directory, created by the package's
        // init script, which does not run in containers.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let dir = process::scratch_dir("sshd");
        let (_, host_public) = keygen(&dir.join("host_key"));
        let (user_key, user_public) = keygen(&dir.join("user_key"));
        let (other_key, other_public) = keygen(&dir.join("other_key"));
        let port = process::free_port();
        std::fs::write(
            dir.join("authorized_keys"),
            format!(
                "environment=\"PATH={path}\",environment=\"DOCKER_HOST={docker_host}\",no-pty,\
                 no-port-forwarding,no-agent-forwarding,no-X11-forwarding {user_public}\n"
            ),
        )
        .expect("authorized_keys");
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {host_key}\n\
                 PidFile {pid}\n\
                 AuthorizedKeysFile {keys}\n\
                 AllowUsers root\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PermitUserEnvironment PATH,DOCKER_HOST\n\
                 AllowTcpForwarding no\n\
                 AllowStreamLocalForwarding no\n\
                 X11Forwarding no\n\
                 MaxStartups 100\n\
                 LogLevel VERBOSE\n",
                host_key = dir.join("host_key").display(),
                pid = dir.join("sshd.pid").display(),
                keys = dir.join("authorized_keys").display(),
            ),
        )
        .expect("sshd_config");
        let mut cmd = Command::new(SSHD);
        // -D: stay in the foreground (our child), -e: log to stderr.
        cmd.arg("-D").arg("-e").arg("-f").arg(&config);
        let service = Service::spawn("sshd", cmd, dir.join("sshd.log")).expect("starting sshd");
        service
            .wait_ready(Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        Sshd {
            port,
            known_hosts: format!("[127.0.0.1]:{port} {}", key_fields(&host_public)),
            user_key,
            other_key,
            wrong_known_hosts: format!("[127.0.0.1]:{port} {}", key_fields(&other_public)),
            dir,
            service,
        }
    }

    /// sshd's pid.
    pub fn pid(&self) -> u32 {
        self.service.pid()
    }

    /// The last lines of sshd's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.service.log_tail(lines)
    }

    /// Kills every session sshd forked (its descendants, by pid), leaving
    /// the listener up: the connections of a running build drop.
    pub fn kill_sessions(&self) -> usize {
        let master = self.pid() as i32;
        let all = super::process::list();
        let mut doomed = vec![master];
        // Descendants, parents before children.
        let mut i = 0;
        while i < doomed.len() {
            let parent = doomed[i];
            doomed.extend(all.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
            i += 1;
        }
        for pid in &doomed[1..] {
            // SAFETY: plain syscall on a descendant of our own sshd.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        doomed.len() - 1
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill_sessions();
        if self.service.exited().is_none() {
            // SAFETY: plain syscall on our own child, not yet reaped.
            unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
            for _ in 0..40 {
                if self.service.exited().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
