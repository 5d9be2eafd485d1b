//! `docker-registry` (CNCF distribution) instances on 127.0.0.1: one over plain
//! HTTP without auth, one over TLS with a CA generated per run by `openssl` and
//! htpasswd (bcrypt) authentication. Each is started once per test binary.
//! Both accept Docker schema 1 pushes (`compatibility.schema1`), so tests can
//! show how legacy manifests (quay, registry-image #87) are handled; clients
//! that accept schema 2 or OCI still get those.
//!
//! Every test of a binary shares them: name repositories with
//! [`super::unique`]. [`Registry::source`] gives the resource's `source`
//! JSON (integration tests); the fields (host, CA, credentials) are what
//! the library's unit tests build its registry client from.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use super::certs;
use super::process::{self, Service};
use super::{require_tool, run_tool};

/// One running registry.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The CA certificate (PEM) that signed the server certificate (TLS only).
    pub ca_pem: Option<String>,
    /// The CA certificate file (TLS only), alone in its directory.
    pub ca_path: Option<PathBuf>,
    /// Basic-auth user (auth only).
    pub username: Option<String>,
    /// Basic-auth password (auth only); unique per run so tests can assert it
    /// never shows up in output.
    pub password: Option<String>,
    /// The registry's storage and config directory.
    pub root: PathBuf,
    service: Service,
}

/// The plain-HTTP registry without auth.
pub fn plain() -> &'static Registry {
    static PLAIN: OnceLock<Registry> = OnceLock::new();
    PLAIN.get_or_init(|| start(false))
}

/// The TLS registry with htpasswd auth (`username`/`password`).
pub fn tls_auth() -> &'static Registry {
    static TLS: OnceLock<Registry> = OnceLock::new();
    TLS.get_or_init(|| start(true))
}

/// A new TLS registry with htpasswd auth for `username`/`password` (e.g.
/// `AWS` and the password moto's ECR tokens carry, src/ecr.rs's tests),
/// stopped when the test binary exits.
pub fn tls_with_user(username: &str, password: &str) -> Registry {
    start_with(true, Some((username.to_owned(), password.to_owned())))
}

impl Registry {
    /// Whether it speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.ca_pem.is_some()
    }

    /// `<host>/<repo>`.
    pub fn repo(&self, repo: &str) -> String {
        format!("{}/{repo}", self.host)
    }

    /// `<host>/<repo>:<tag>`.
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host)
    }

    /// A `source` for our resource pointing at `<host>/<repo>`, with the
    /// registry's credentials and CA when it has them.
    pub fn source(&self, repo: &str) -> Value {
        let mut source = json!({ "repository": self.repo(repo) });
        if let (Some(user), Some(pass)) = (&self.username, &self.password) {
            source["username"] = json!(user);
            source["password"] = json!(pass);
        }
        if let Some(ca) = &self.ca_pem {
            source["ca_certs"] = json!([ca]);
        }
        source
    }

    /// skopeo options for a `docker://` destination on this registry.
    pub fn skopeo_dest_args(&self) -> Vec<String> {
        self.skopeo_args("dest-")
    }

    /// skopeo options for a `docker://` source on this registry.
    pub fn skopeo_src_args(&self) -> Vec<String> {
        self.skopeo_args("src-")
    }

    /// skopeo options for single-image commands (`inspect`, `delete`).
    pub fn skopeo_plain_args(&self) -> Vec<String> {
        self.skopeo_args("")
    }

    fn skopeo_args(&self, prefix: &str) -> Vec<String> {
        let mut args = Vec::new();
        match &self.ca_path {
            Some(ca) => {
                let dir = ca.parent().expect("ca file has a directory");
                args.push(format!("--{prefix}cert-dir={}", dir.display()));
            }
            None => args.push(format!("--{prefix}tls-verify=false")),
        }
        if let (Some(user), Some(pass)) = (&self.username, &self.password) {
            args.push(format!("--{prefix}creds={user}:{pass}"));
        }
        args
    }

    /// The exact manifest bytes of `<repo>:<tag>` or `<repo>@<digest>`, as
    /// `skopeo inspect --raw` sees them.
    pub fn inspect_raw(&self, reference: &str) -> Vec<u8> {
        run_tool(
            Command::new(skopeo())
                .arg("inspect")
                .arg("--raw")
                .args(self.skopeo_plain_args())
                .arg(format!("docker://{}", self.qualify(reference))),
        )
    }

    /// The registry's digest of a reference as `skopeo inspect` computes it
    /// (for signed schema 1 manifests: of the payload without signatures).
    pub fn registry_digest(&self, reference: &str) -> String {
        let out = run_tool(
            Command::new(skopeo())
                .arg("inspect")
                .args(self.skopeo_plain_args())
                .arg(format!("docker://{}", self.qualify(reference))),
        );
        let v: Value = serde_json::from_slice(&out).expect("skopeo inspect prints JSON");
        v["Digest"].as_str().expect("Digest").to_string()
    }

    /// The digest of a tag or digest reference, computed from the raw bytes.
    pub fn digest_of(&self, reference: &str) -> String {
        super::sha256_digest(&self.inspect_raw(reference))
    }

    /// Deletes the manifest a reference points to (`skopeo delete`).
    pub fn delete(&self, reference: &str) {
        run_tool(
            Command::new(skopeo())
                .arg("delete")
                .args(self.skopeo_plain_args())
                .arg(format!("docker://{}", self.qualify(reference))),
        );
    }

    /// Copies `src` (any skopeo transport, e.g. `oci:DIR:TAG`) to
    /// `<host>/<repo>:<tag>`; `all` copies every image of an index.
    pub fn push(&self, src: &str, repo: &str, tag: &str, all: bool) {
        let mut cmd = Command::new(skopeo());
        cmd.arg("copy").arg("--quiet").arg("--preserve-digests");
        if all {
            cmd.arg("--all");
        }
        cmd.args(self.skopeo_dest_args())
            .arg(src)
            .arg(format!("docker://{}", self.reference(repo, tag)));
        run_tool(&mut cmd);
    }

    /// Copies `src` to `<host>/<repo>:<tag>` converting manifests to
    /// `format` (`v2s2` = Docker schema 2, `oci`); indexes with all images.
    pub fn push_as(&self, src: &str, repo: &str, tag: &str, format: &str) {
        let mut cmd = Command::new(skopeo());
        cmd.arg("copy")
            .arg("--quiet")
            .arg("--all")
            .arg(format!("--format={format}"))
            .args(self.skopeo_dest_args())
            .arg(src)
            .arg(format!("docker://{}", self.reference(repo, tag)));
        run_tool(&mut cmd);
    }

    /// Adds `tag` to the image tagged `from` in the same repository, keeping the
    /// exact manifest bytes (so the digest is the same).
    pub fn retag(&self, repo: &str, from: &str, tag: &str) {
        let mut cmd = Command::new(skopeo());
        cmd.arg("copy")
            .arg("--quiet")
            .arg("--all")
            .arg("--preserve-digests")
            .args(self.skopeo_src_args())
            .args(self.skopeo_dest_args())
            .arg(format!("docker://{}", self.reference(repo, from)))
            .arg(format!("docker://{}", self.reference(repo, tag)));
        run_tool(&mut cmd);
    }

    /// `GET /v2/<repo>/tags/list` as skopeo sees it.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let out = run_tool(
            Command::new(skopeo())
                .arg("list-tags")
                .args(self.skopeo_plain_args())
                .arg(format!("docker://{}", self.repo(repo))),
        );
        let v: Value = serde_json::from_slice(&out).expect("skopeo list-tags prints JSON");
        v["Tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn qualify(&self, reference: &str) -> String {
        if reference.starts_with(&self.host) {
            reference.to_string()
        } else {
            format!("{}/{reference}", self.host)
        }
    }

    /// The registry's log, for diagnosing a failed test.
    pub fn log_tail(&self, lines: usize) -> String {
        self.service.log_tail(lines)
    }

    /// The registry process id.
    pub fn pid(&self) -> u32 {
        self.service.pid()
    }
}

/// skopeo on `PATH`; panics with the install hint when missing.
pub fn skopeo() -> PathBuf {
    require_tool("skopeo", "skopeo")
}

fn start(tls: bool) -> Registry {
    let user = tls.then(|| {
        (
            "oci-user".to_string(),
            format!("pw-{:016x}", rand::random::<u64>()),
        )
    });
    start_with(tls, user)
}

fn start_with(tls: bool, user: Option<(String, String)>) -> Registry {
    let binary = require_tool("docker-registry", "docker-registry");
    let kind = if tls {
        "registry-tls"
    } else {
        "registry-plain"
    };
    let root = process::scratch_dir(kind);
    let (ca, auth) = if let (true, Some((user, pass))) = (tls, user) {
        let certs = make_certs(&root);
        let htpasswd = root.join("htpasswd");
        run_tool(
            Command::new(require_tool("htpasswd", "apache2-utils"))
                .arg("-Bbc")
                .arg(&htpasswd)
                .arg(&user)
                .arg(&pass),
        );
        (Some(certs), Some((user, pass, htpasswd)))
    } else {
        (None, None)
    };
    let mut last_error = String::new();
    // The port is picked by binding :0 and released before the registry binds
    // it, so another process may grab it in between: retry a few times.
    for attempt in 0..4 {
        let port = process::free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             compatibility:\n  schema1:\n    enabled: true\n\
             http:\n  addr: {host}\n  secret: test-world-{port}\n",
            root.join("data").display()
        );
        if let Some(certs) = &ca {
            config += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certs.server_crt.display(),
                certs.server_key.display()
            );
        }
        if let Some((_, _, htpasswd)) = &auth {
            config += &format!(
                "auth:\n  htpasswd:\n    realm: test-world\n    path: {}\n",
                htpasswd.display()
            );
        }
        let config_path = root.join(format!("config-{attempt}.yml"));
        std::fs::write(&config_path, config).expect("writing registry config");
        let mut cmd = Command::new(&binary);
        cmd.arg("serve").arg(&config_path).env_clear();
        let service = Service::spawn(kind, cmd, root.join(format!("log-{attempt}")))
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let ready = service.wait_ready(Duration::from_secs(20), || {
            if tls {
                TcpStream::connect(&host).is_ok()
            } else {
                http_status(&host, "/v2/") == Some(200)
            }
        });
        match ready {
            Ok(()) => {
                return Registry {
                    host,
                    ca_pem: ca
                        .as_ref()
                        .map(|c| std::fs::read_to_string(&c.ca_crt).expect("reading ca.crt")),
                    ca_path: ca.as_ref().map(|c| c.ca_crt.clone()),
                    username: auth.as_ref().map(|a| a.0.clone()),
                    password: auth.as_ref().map(|a| a.1.clone()),
                    root,
                    service,
                };
            }
            Err(e) => last_error = e,
        }
    }
    panic!("docker-registry did not start: {last_error}");
}

/// Status code of a plain-HTTP GET, or None if nothing answered.
pub fn http_status(host: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

struct Certs {
    ca_crt: PathBuf,
    server_crt: PathBuf,
    server_key: PathBuf,
}

/// A CA and a server certificate for 127.0.0.1/localhost. The CA
/// certificate is copied alone into `<root>/ca/ca.crt`, as skopeo's
/// `--cert-dir` and dockerd's `certs.d` want it (a key there would be read
/// as a client identity).
fn make_certs(root: &Path) -> Certs {
    let dir = root.join("tls");
    let ca = certs::ca(&dir, "ca");
    let server = certs::leaf(
        &dir,
        "server",
        &ca,
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
    let ca_dir = root.join("ca");
    std::fs::create_dir_all(&ca_dir).expect("creating ca dir");
    let ca_crt = ca_dir.join("ca.crt");
    std::fs::copy(&ca.cert, &ca_crt).expect("copying ca.crt");
    Certs {
        ca_crt,
        server_crt: server.cert,
        server_key: server.key,
    }
}
