//! Test helpers for the registry client: a real `docker-registry` (plain
//! HTTP, or TLS with a per-test CA plus htpasswd), fixtures built with
//! `umoci` and pushed with `skopeo`, and a tiny scripted HTTP server on
//! 127.0.0.1 for registries that lie. Every process started here is killed
//! by pid when its owner is dropped.

use std::io::Write as _;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Repository;
use super::{Access, Client, Credentials, TlsOptions};
use crate::secret::Secret;

/// Panics with the command line and its output unless it succeeds.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port on 127.0.0.1")
}

/// A `docker-registry` started for one test.
pub struct TestRegistry {
    /// `127.0.0.1:PORT`
    pub host: String,
    /// CA certificate (PEM) for the TLS variant.
    pub ca_pem: Option<String>,
    /// Directory holding `ca.crt`, for `skopeo --dest-cert-dir`.
    pub cert_dir: Option<PathBuf>,
    /// htpasswd user and password for the TLS variant.
    pub credentials: Option<(String, String)>,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestRegistry {
    /// A plain-HTTP registry without auth.
    pub fn plain() -> TestRegistry {
        Self::start(false)
    }

    /// A TLS registry (certificate for 127.0.0.1 from a fresh CA) with
    /// htpasswd auth `user`/`secret-pass`.
    pub fn tls_auth() -> TestRegistry {
        Self::start(true)
    }

    fn start(tls: bool) -> TestRegistry {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let d = dir.path();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            d.join("storage").display()
        );
        let (mut ca_pem, mut cert_dir, mut credentials) = (None, None, None);
        if tls {
            let certs = d.join("certs");
            std::fs::create_dir_all(&certs).expect("creating cert dir");
            let ext = d.join("san.ext");
            std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").expect("writing san.ext");
            run(Command::new("openssl").current_dir(d).args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "certs/ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=test-ca",
            ]));
            run(Command::new("openssl").current_dir(d).args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ]));
            run(Command::new("openssl").current_dir(d).args([
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "certs/ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ]));
            run(Command::new("htpasswd").current_dir(d).args([
                "-Bbc",
                "htpasswd",
                "user",
                "secret-pass",
            ]));
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                d.join("server.crt").display(),
                d.join("server.key").display(),
                d.join("htpasswd").display()
            ));
            ca_pem = Some(std::fs::read_to_string(certs.join("ca.crt")).expect("reading ca.crt"));
            cert_dir = Some(certs);
            credentials = Some(("user".to_owned(), "secret-pass".to_owned()));
        }
        let config_path = d.join("config.yml");
        std::fs::File::create(&config_path)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .expect("writing registry config");
        let log = std::fs::File::create(d.join("registry.log")).expect("creating log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let reg = TestRegistry {
            host,
            ca_pem,
            cert_dir,
            credentials,
            child,
            dir,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry on {} did not start:\n{log}", self.host);
    }

    /// `<host>/<name>` parsed as a repository.
    pub fn repo(&self, name: &str) -> Repository {
        Repository::parse(&format!("{}/{name}", self.host)).expect("valid test repository")
    }

    /// Credentials of this registry (anonymous for the plain one).
    pub fn creds(&self) -> Credentials {
        match &self.credentials {
            Some((u, p)) => Credentials::Basic {
                username: u.clone(),
                password: Secret::new(p.clone()),
            },
            None => Credentials::Anonymous,
        }
    }

    /// TLS options trusting this registry's CA.
    pub fn tls(&self) -> TlsOptions {
        TlsOptions {
            ca_certs: self.ca_pem.iter().cloned().collect(),
            insecure: false,
            read_timeout: None,
        }
    }

    /// A client for `name` with this registry's credentials and CA.
    pub fn client(&self, name: &str, access: Access) -> Client {
        Client::new(&self.repo(name), self.creds(), &self.tls(), access).expect("building client")
    }

    fn skopeo_dest(&self, cmd: &mut Command) {
        match &self.cert_dir {
            Some(dir) => cmd.arg("--dest-cert-dir").arg(dir),
            None => cmd.arg("--dest-tls-verify=false"),
        };
        if let Some((u, p)) = &self.credentials {
            cmd.arg("--dest-creds").arg(format!("{u}:{p}"));
        }
    }

    /// Copies `layout:tag` to `<host>/<name>:<dest_tag>` with skopeo.
    pub fn push_layout(&self, layout: &Path, tag: &str, name: &str, dest_tag: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet"]);
        self.skopeo_dest(&mut cmd);
        cmd.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{name}:{dest_tag}", self.host));
        run(&mut cmd);
    }

    /// The exact manifest bytes `skopeo inspect --raw` sees.
    pub fn raw_manifest(&self, name: &str, reference: &str) -> Vec<u8> {
        let mut cmd = Command::new("skopeo");
        cmd.arg("inspect").arg("--raw");
        match &self.cert_dir {
            Some(dir) => cmd.arg("--cert-dir").arg(dir),
            None => cmd.arg("--tls-verify=false"),
        };
        if let Some((u, p)) = &self.credentials {
            cmd.arg("--creds").arg(format!("{u}:{p}"));
        }
        let sep = if reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        cmd.arg(format!("docker://{}/{name}{sep}{reference}", self.host));
        run(&mut cmd)
    }
}

/// An OCI layout built with umoci: image `tag` with one layer holding
/// `/hello` = `content` (different content → different digests).
pub fn umoci_layout(dir: &Path, tag: &str, content: &str) -> PathBuf {
    umoci_layout_created(dir, tag, content, "2020-01-01T00:00:00Z")
}

/// [`umoci_layout`] with the image config's `created` time set.
pub fn umoci_layout_created(dir: &Path, tag: &str, content: &str, created: &str) -> PathBuf {
    let layout = dir.join("layout");
    if !layout.join("index.json").exists() {
        run(Command::new("umoci")
            .arg("init")
            .arg("--layout")
            .arg(&layout));
    }
    let image = format!("{}:{tag}", layout.display());
    run(Command::new("umoci").args(["new", "--image", &image]));
    let bundle = dir.join(format!("bundle-{tag}"));
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &image])
        .arg(&bundle));
    std::fs::write(bundle.join("rootfs/hello"), content).expect("writing fixture file");
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.label",
        &format!("fixture={content}"),
        "--created",
        created,
    ]));
    layout
}

/// A request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// `GET`, `HEAD`...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    /// A header value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Writes these raw bytes and closes the connection.
    Close(Vec<u8>),
    /// Writes these raw bytes (say, a head and part of a body), then sends
    /// nothing more until the client hangs up: a registry that stalls.
    Stall(Vec<u8>),
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

/// A scripted HTTP/1.1 server on 127.0.0.1: `handler` returns the raw
/// response bytes for each request (one request per connection). Stops when
/// dropped.
pub struct FakeServer {
    /// `127.0.0.1:PORT`
    pub host: String,
    /// Every request received, in order.
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts serving with `handler`.
    pub async fn start(
        handler: impl Fn(&SeenRequest) -> Vec<u8> + Send + Sync + 'static,
    ) -> FakeServer {
        Self::start_with(move |req| Reply::Close(handler(req))).await
    }

    /// Starts serving with `handler`, which may also stall ([`Reply`]).
    pub async fn start_with(
        handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let host = listener.local_addr().expect("local addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let handler = handler.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        // A TLS ClientHello (the client's https probe): hang
                        // up, as a plain-HTTP registry's failed handshake would.
                        if buf.first() == Some(&0x16) {
                            return;
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or_default().split(' ');
                    let req = SeenRequest {
                        method: first.next().unwrap_or_default().to_owned(),
                        path: first.next().unwrap_or_default().to_owned(),
                        headers: lines
                            .take_while(|l| !l.is_empty())
                            .filter_map(|l| l.split_once(':'))
                            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                            .collect(),
                    };
                    seen.lock().expect("seen lock").push(req.clone());
                    match handler(&req) {
                        Reply::Close(resp) => {
                            let _ = sock.write_all(&resp).await;
                            let _ = sock.shutdown().await;
                        }
                        Reply::Stall(resp) => {
                            let _ = sock.write_all(&resp).await;
                            // Until the client gives up and closes.
                            while let Ok(n) = sock.read(&mut chunk).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        FakeServer { host, seen, task }
    }

    /// Requests seen so far as `METHOD path`.
    pub fn log(&self) -> Vec<String> {
        self.seen
            .lock()
            .expect("seen lock")
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// A raw HTTP response with `Connection: close`.
pub fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    let mut has_length = false;
    for (n, v) in headers {
        has_length |= n.eq_ignore_ascii_case("content-length");
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if !has_length {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}
