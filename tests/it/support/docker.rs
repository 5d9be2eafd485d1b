//! A private `dockerd` (Docker Engine) for tests that load, run or build
//! images: its own data root, exec root, pidfile and unix socket under the
//! run's scratch dir, no iptables, started once per test binary.
//!
//! It gets a bridge of its own ([`Bridge`], `oci-it-<pid>` on a free
//! 172.31.N.0/24): `--bridge=none` would make dockerd delete the machine's
//! `docker0`, breaking the default network of a Docker already running
//! here, and the default would take `docker0` over.
//!
//! dockerd trusts registry CAs only from `/etc/docker/certs.d/<host:port>/`
//! (the directory is not configurable for a root daemon in Engine 20.10), so
//! the TLS registry's CA is written there under its per-run port and removed
//! at exit.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use super::process::{self, Service};
use super::{registry, which};

/// One running dockerd.
pub struct Docker {
    /// Its API socket.
    pub socket: PathBuf,
    /// Its data root.
    pub data_root: PathBuf,
    service: Service,
}

/// The shared dockerd; panics when it is not installed or cannot start.
///
/// Tests that call it carry `#[cfg_attr(not(have_dockerd), ignore = ...)]`:
/// build.rs sets `have_dockerd` when dockerd and the docker CLI are on PATH
/// and the build runs as root (always under `CI=true`), so a machine without
/// them shows those tests as ignored, and one where dockerd is broken fails.
pub fn shared() -> &'static Docker {
    static DOCKER: OnceLock<Result<Docker, String>> = OnceLock::new();
    match DOCKER.get_or_init(start) {
        Ok(docker) => docker,
        Err(why) => panic!("needs dockerd ({why}; apt-get install docker.io, run as root)"),
    }
}

impl Docker {
    /// A `docker` CLI command talking to this daemon.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(which("docker").expect("docker CLI on PATH"));
        cmd.arg("--host")
            .arg(format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.data_root.join("cli-config"));
        cmd
    }

    /// Runs `docker <args>` and returns its output (not checked).
    pub fn run(&self, args: &[&str]) -> Output {
        self.cli()
            .args(args)
            .output()
            .expect("running the docker CLI")
    }

    /// `GET <path>` on the Engine API; returns (status, body).
    pub fn api_get(&self, path: &str) -> (u16, Vec<u8>) {
        api_get(&self.socket, path).unwrap_or_else(|e| panic!("GET {path} on dockerd: {e}"))
    }

    /// The daemon's log tail.
    pub fn log_tail(&self, lines: usize) -> String {
        self.service.log_tail(lines)
    }
}

fn start() -> Result<Docker, String> {
    let plain = registry::plain();
    let tls = registry::tls_auth();
    trust_ca(tls)?;
    let bridge = Bridge::shared()?;
    let root = process::scratch_dir("dockerd");
    let (cmd, socket, data_root) = dockerd_command(&root, Some(&bridge.name), &plain.host)?;
    let service = Service::spawn("dockerd", cmd, root.join("dockerd.log"))
        .map_err(|e| format!("starting dockerd: {e}"))?;
    service.wait_ready(Duration::from_secs(60), || ping(&socket))?;
    Ok(Docker {
        socket,
        data_root,
        service,
    })
}

/// The dockerd command line of a test daemon rooted in `root`, attached to
/// `bridge`, trusting `insecure_registry` over plain HTTP; with its socket
/// and data root. Forwarding and masquerading stay as the machine has them.
/// `None` is `--bridge=none`, which deletes the `docker0` of the network
/// namespace dockerd runs in: only for a dockerd in a namespace of its own.
pub fn dockerd_command(
    root: &Path,
    bridge: Option<&str>,
    insecure_registry: &str,
) -> Result<(Command, PathBuf, PathBuf), String> {
    let dockerd = which("dockerd").ok_or("dockerd is not on PATH")?;
    which("docker").ok_or("the docker CLI is not on PATH")?;
    let socket = root.join("docker.sock");
    let data_root = root.join("data");
    let mut cmd = Command::new(dockerd);
    cmd.arg("--data-root")
        .arg(&data_root)
        .arg("--exec-root")
        .arg(root.join("exec"))
        .arg("--pidfile")
        .arg(root.join("dockerd.pid"))
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .args(["--iptables=false", "--ip6tables=false"])
        .args(["--ip-forward=false", "--ip-masq=false"])
        .arg(format!("--bridge={}", bridge.unwrap_or("none")))
        .arg("--insecure-registry")
        .arg(insecure_registry);
    Ok((cmd, socket, data_root))
}

/// A Linux bridge made for the test dockerd (address `172.31.N.1/24`),
/// deleted when the test binary exits (or by a later run, when this one was
/// killed).
pub struct Bridge {
    /// `oci-it-<pid>`.
    pub name: String,
}

impl Bridge {
    /// The run's bridge, made once.
    pub fn shared() -> Result<&'static Bridge, String> {
        static BRIDGE: OnceLock<Result<Bridge, String>> = OnceLock::new();
        BRIDGE
            .get_or_init(Bridge::create)
            .as_ref()
            .map_err(Clone::clone)
    }

    fn create() -> Result<Bridge, String> {
        // The scratch root's first use sweeps the links of killed runs.
        process::scratch_root();
        let name = format!("{}{}", process::LINK_PREFIX, std::process::id());
        let ip = |args: &[&str]| -> Result<String, String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("running ip (iproute2): {e}"))?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let taken = ip(&["-4", "-o", "addr", "show"])? + &ip(&["-4", "route", "show"])?;
        let start = std::process::id() % 200;
        let subnet = (0..200)
            .map(|i| 16 + (start + i) % 200)
            .find(|n| !taken.contains(&format!("172.31.{n}.")))
            .ok_or("no free 172.31.N.0/24 for the test bridge")?;
        let address = format!("172.31.{subnet}.1/24");
        ip(&["link", "add", "name", &name, "type", "bridge"])?;
        process::delete_link_at_exit(&name);
        ip(&["addr", "add", &address, "dev", &name])?;
        ip(&["link", "set", &name, "up"])?;
        Ok(Bridge { name })
    }
}

/// Makes dockerd trust the TLS registry's CA (see module docs).
fn trust_ca(tls: &registry::Registry) -> Result<(), String> {
    let ca = tls.ca_pem.as_ref().ok_or("the TLS registry has no CA")?;
    let dir = Path::new("/etc/docker/certs.d").join(&tls.host);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    process::remove_with_root(&dir);
    std::fs::write(dir.join("ca.crt"), ca)
        .map_err(|e| format!("writing {}/ca.crt: {e}", dir.display()))
}

/// Whether the Engine on `socket` answers `GET /_ping` with `OK`.
pub fn ping(socket: &Path) -> bool {
    api_get(socket, "/_ping").is_ok_and(|(status, body)| status == 200 && body == b"OK")
}

/// A minimal HTTP/1.0 GET over the Engine's unix socket.
fn api_get(socket: &Path, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((status, response[split + 4..].to_vec()))
}
