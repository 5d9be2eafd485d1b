//! Amazon ECR auth (`source.aws_*`, src/ecr.rs) against moto as the STS and
//! ECR endpoint (`OCI_BUILD_RESOURCE_TEST_AWS_ENDPOINT`, test-only), in front
//! of docker-registry instances whose htpasswd accepts what moto's tokens
//! carry: user `AWS`, password `<account id>-auth-token` (moto
//! 5.2.5, `moto/ecr/responses.py` `get_authorization_token`). No registry
//! credentials are given to our binaries: only AWS keys.
//!
//! moto comes from `target/moto-venv` (scripts/test installs it there, pinned),
//! `$MOTO_SERVER`, or `moto_server` on PATH. Without it these tests print
//! SKIP, and fail under `CI=true`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::put::{Src, registry_digest};
use crate::support;
use crate::support::needs;
use crate::support::process::{self, Service};
use crate::support::registry::Registry;

/// moto's default account: static keys it does not know belong to it.
const ACCOUNT: &str = "123456789012";
/// The account of the second role in the role chain test.
const CHAIN_ACCOUNT: &str = "222222222222";
const REGION: &str = "us-east-1";
const ENDPOINT_ENV: &str = "OCI_BUILD_RESOURCE_TEST_AWS_ENDPOINT";
/// Our AWS secret key; must never show up in output.
const SECRET_KEY: &str = "ecr-test-secret-3f9a1c77d2";

fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/moto-venv/bin/moto_server");
    if venv.is_file() {
        return Some(venv);
    }
    support::which("moto_server")
}

/// moto, or None (after printing SKIP) when it is not installed; panics
/// under `CI=true`, where scripts/test has installed it.
fn moto_or_skip() -> Option<PathBuf> {
    let found = moto_binary();
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("needs moto_server: run scripts/test (installs moto into target/moto-venv)");
        }
        eprintln!("SKIP: needs moto (run scripts/test, or set MOTO_SERVER)");
    }
    found
}

/// A moto server on 127.0.0.1; `env` configures it (e.g. IAM auth on).
struct Moto {
    url: String,
    service: Service,
}

impl Moto {
    fn start(binary: &std::path::Path, env: &[(&str, &str)]) -> Moto {
        let root = process::scratch_dir("moto");
        let mut last = String::new();
        for attempt in 0..4 {
            let port = process::free_port();
            let mut cmd = Command::new(binary);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .envs(env.iter().copied());
            let service = Service::spawn("moto", cmd, root.join(format!("log-{attempt}")))
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let host = format!("127.0.0.1:{port}");
            match service.wait_ready(Duration::from_secs(60), || {
                support::registry::http_status(&host, "/moto-api/data.json") == Some(200)
            }) {
                Ok(()) => {
                    return Moto {
                        url: format!("http://{host}"),
                        service,
                    };
                }
                Err(e) => last = e,
            }
        }
        panic!("moto did not start: {last}");
    }

    /// The role ARNs moto saw assumed, in order.
    fn assumed_roles(&self) -> Vec<String> {
        let out = support::run_tool(
            Command::new(support::require_tool("curl", "curl"))
                .arg("-sf")
                .arg(format!("{}/moto-api/data.json", self.url)),
        );
        let data: Value = serde_json::from_slice(&out).expect("moto data.json is JSON");
        data["sts"]["AssumedRole"]
            .as_array()
            .map(|roles| {
                roles
                    .iter()
                    .filter_map(|r| r["role_arn"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The shared moto (no IAM checks: any key signs for account [`ACCOUNT`]).
fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    let binary = moto_or_skip()?;
    Some(MOTO.get_or_init(|| Moto::start(&binary, &[])))
}

/// The registry for account `account`: `AWS` / `<account>-auth-token`.
fn ecr_registry(account: &'static str) -> &'static Registry {
    static MAIN: OnceLock<Registry> = OnceLock::new();
    static CHAIN: OnceLock<Registry> = OnceLock::new();
    let cell = if account == ACCOUNT { &MAIN } else { &CHAIN };
    cell.get_or_init(|| support::registry::tls_with_user("AWS", &format!("{account}-auth-token")))
}

/// A source for `repo` on `reg` with AWS keys only (no username/password).
fn ecr_source(reg: &Registry, repo: &str) -> Value {
    json!({
        "repository": reg.repo(repo),
        "tag": "latest",
        "ca_certs": [reg.ca_pem.clone().expect("a TLS registry")],
        "aws_region": REGION,
        "aws_access_key_id": "AKIAOCIBUILDTEST",
        "aws_secret_access_key": SECRET_KEY,
    })
}

fn run(bin: &str, moto: &Moto, args: &[&std::path::Path], req: &Value) -> support::cmd::Output {
    // `out` starts the embedded buildkitd, found on PATH.
    let path = if bin == "out" {
        support::buildkitd::path_env()
    } else {
        std::env::var("PATH").unwrap_or_default()
    };
    support::cmd::run(
        bin,
        args,
        req,
        &[(ENDPOINT_ENV, moto.url.as_str()), ("PATH", path.as_str())],
    )
}

needs! { buildkitd;
    /// check → put (embedded buildkitd: push, registry cache, and a `FROM` from
    /// the same registry, all with the ECR token) → check → get.
    #[test]
    fn check_put_get_with_ecr_auth() {
        let Some(moto) = moto() else { return };
        let reg = ecr_registry(ACCOUNT);
        let repo = support::unique("ecr-app");
        let base = support::fixtures::busybox_base(reg);
        let source = ecr_source(reg, &repo);

        let before = run("check", moto, &[], &json!({"source": source}));
        before.expect_success().expect_not_leaked(SECRET_KEY);
        assert_eq!(before.json(), json!([]), "nothing pushed yet");

        let src = Src::new(&[(
            "src/Dockerfile",
            &format!("FROM {base}\nCOPY Dockerfile /ecr-built\n"),
        )]);
        let put = run(
            "out",
            moto,
            &[src.path()],
            &json!({"source": source, "params": {"context": "src", "cache": true}}),
        );
        put.expect_success()
            .expect_not_leaked(SECRET_KEY)
            .expect_not_leaked(&format!("{ACCOUNT}-auth-token"))
            .expect_stderr("authenticated with ECR");
        // The transcript, for reading in the test's output.
        eprintln!(
            "--- out stderr ---\n{}--- out stdout ---\n{}",
            put.stderr, put.stdout
        );
        let digest = put.json()["version"]["digest"]
            .as_str()
            .expect("version digest")
            .to_string();
        assert_eq!(
            registry_digest(reg, &format!("{repo}:latest")).as_deref(),
            Some(digest.as_str())
        );

        let after = run("check", moto, &[], &json!({"source": source}));
        after.expect_success();
        assert_eq!(after.json(), json!([{"tag": "latest", "digest": digest}]));

        let dest = tempfile::tempdir().expect("get dir");
        run(
            "in",
            moto,
            &[dest.path()],
            &json!({"source": source, "version": {"tag": "latest", "digest": digest}, "params": {}}),
        )
        .expect_success()
        .expect_not_leaked(SECRET_KEY);
        assert!(dest.path().join("rootfs/ecr-built").is_file());
        assert_eq!(
            std::fs::read_to_string(dest.path().join("repository")).expect("repository file"),
            reg.repo(&repo)
        );
    }
}

/// `aws_role_arns` are assumed in order, each with the previous one's keys:
/// moto records both, and the token is for the last role's account.
#[test]
fn role_chain_assumes_each_role_in_order() {
    let Some(moto) = moto() else { return };
    let reg = ecr_registry(CHAIN_ACCOUNT);
    let pushed = support::fixtures::busybox(reg);
    let first = format!(
        "arn:aws:iam::111111111111:role/{}",
        support::unique("first")
    );
    let second = format!(
        "arn:aws:iam::{CHAIN_ACCOUNT}:role/{}",
        support::unique("second")
    );
    let mut source = ecr_source(reg, &pushed.repo);
    source["tag"] = json!(pushed.tag);
    source["aws_role_arns"] = json!([first, second]);
    let check = run("check", moto, &[], &json!({"source": source}));
    check.expect_success().expect_not_leaked(SECRET_KEY);
    assert_eq!(check.json(), json!([pushed.version()]));
    let roles: Vec<String> = moto
        .assumed_roles()
        .into_iter()
        .filter(|r| *r == first || *r == second)
        .collect();
    assert_eq!(roles, [first, second]);

    // Only the first role: the token is for 111111111111, which this
    // registry does not accept.
    source["aws_role_arns"] = json!([roles[0]]);
    run("check", moto, &[], &json!({"source": source}))
        .expect_failure()
        .expect_not_leaked(SECRET_KEY);
}

/// An unknown (or expired) key: moto with IAM checks on refuses it. One
/// line naming the call and AWS's code, without the secret.
#[test]
fn invalid_key_fails_in_one_line_without_the_secret() {
    let Some(binary) = moto_or_skip() else { return };
    let strict = Moto::start(&binary, &[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let reg = ecr_registry(ACCOUNT);
    let source = ecr_source(reg, &support::unique("ecr-denied"));
    let check = run("check", &strict, &[], &json!({"source": source}));
    check
        .expect_failure()
        .expect_not_leaked(SECRET_KEY)
        .expect_stderr(
            "error: cannot authenticate with ECR: ecr:GetAuthorizationToken was refused with \
             HTTP 403: InvalidClientTokenId: The security token included in the request is invalid.",
        );
    let error_lines: Vec<&str> = check
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(error_lines.len(), 1, "{}", check.details());
    drop(strict.service);

    // The test endpoint is refused unless it is loopback.
    let out = support::cmd::run(
        "check",
        &[],
        &json!({"source": source}),
        &[(ENDPOINT_ENV, "http://sts.example.com")],
    );
    out.expect_failure()
        .expect_stderr("test-only setting")
        .expect_not_leaked(SECRET_KEY);
}

// The standard chain: no keys in the source. The container and instance
// endpoints are small loopback servers speaking their documented protocols
// (ECS: GET with the `Authorization` token; IMDSv2: PUT for a session
// token, then GETs carrying it); STS and ECR are moto.

use test_support::fake_server::{FakeServer, SeenRequest, response};

/// A source with `aws_region` and no keys.
fn chain_source(reg: &Registry) -> Value {
    let pushed = support::fixtures::busybox(reg);
    let mut source = ecr_source(reg, &pushed.repo);
    source["tag"] = json!(pushed.tag);
    let map = source.as_object_mut().expect("object");
    map.remove("aws_access_key_id");
    map.remove("aws_secret_access_key");
    source
}

/// Runs `check` with the standard chain's variables `env` (and moto).
fn chain_check(moto: &Moto, source: &Value, env: &[(&str, &str)]) -> support::cmd::Output {
    let mut all = vec![(ENDPOINT_ENV, moto.url.as_str())];
    all.extend_from_slice(env);
    support::cmd::run("check", &[], &json!({"source": source}), &all)
}

/// Keys as ECS and IMDS answer them, expiring in an hour.
fn credentials_json() -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let expiration = chrono::DateTime::from_timestamp(now + 3600, 0).expect("a time");
    json!({
        "Code": "Success",
        "AccessKeyId": "ASIACHAINTEST",
        "SecretAccessKey": SECRET_KEY,
        "Token": "chain-session-token-8d1e",
        "Expiration": expiration.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
    .to_string()
    .into_bytes()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn web_identity_token_is_exchanged_with_sts() {
    let Some(moto) = moto() else { return };
    let reg = ecr_registry(ACCOUNT);
    let source = chain_source(reg);
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3b3JrZXIifQ.c2ln\n",
    )
    .expect("write");
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{}", support::unique("irsa"));
    let check = chain_check(
        moto,
        &source,
        &[
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                &token_file.display().to_string(),
            ),
            ("AWS_ROLE_ARN", &role),
        ],
    );
    check
        .expect_success()
        .expect_stderr("web identity token")
        .expect_not_leaked("c2ln");
    assert_eq!(check.json().as_array().map(Vec::len), Some(1));
    assert!(
        moto.assumed_roles().contains(&role),
        "{:?}",
        moto.assumed_roles()
    );
}

#[test]
fn ecs_container_credentials_with_the_token_file() {
    let Some(moto) = moto() else { return };
    let reg = ecr_registry(ACCOUNT);
    let source = chain_source(reg);
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "ecs-agent-token-51c2\n").expect("write");
    let rt = runtime();
    let server = rt.block_on(FakeServer::start(|req: &SeenRequest| {
        match (
            req.method.as_str(),
            req.path.as_str(),
            req.header("authorization"),
        ) {
            ("GET", "/v2/credentials/task", Some("ecs-agent-token-51c2")) => response(
                "200 OK",
                &[("Content-Type", "application/json")],
                &credentials_json(),
            ),
            _ => response(
                "401 Unauthorized",
                &[],
                br#"{"code":"AccessDenied","message":"no"}"#,
            ),
        }
    }));
    let url = format!("http://{}/v2/credentials/task", server.host);
    let check = chain_check(
        moto,
        &source,
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                &token_file.display().to_string(),
            ),
        ],
    );
    check
        .expect_success()
        .expect_stderr("container credentials")
        .expect_not_leaked(SECRET_KEY)
        .expect_not_leaked("ecs-agent-token-51c2");
    assert_eq!(server.log(), ["GET /v2/credentials/task"]);

    // A full URI to another host over plain HTTP is refused, as the SDKs do.
    chain_check(
        moto,
        &source,
        &[(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://198.51.100.7/creds",
        )],
    )
    .expect_failure()
    .expect_stderr("AWS_CONTAINER_CREDENTIALS_FULL_URI");
}

/// IMDSv2 as documented: `PUT /latest/api/token` with a TTL header answers
/// a token; every metadata GET without that token is 401.
fn imds_handler(expired: bool) -> impl Fn(&SeenRequest) -> Vec<u8> + Send + Sync + 'static {
    move |req: &SeenRequest| {
        let token_ok = req.header("x-aws-ec2-metadata-token") == Some("imds-session-7f3a");
        match (req.method.as_str(), req.path.as_str()) {
            ("PUT", "/latest/api/token")
                if req.header("x-aws-ec2-metadata-token-ttl-seconds").is_some() =>
            {
                response("200 OK", &[], b"imds-session-7f3a")
            }
            ("GET", "/latest/meta-data/iam/security-credentials/") if token_ok => {
                response("200 OK", &[], b"worker-role")
            }
            ("GET", "/latest/meta-data/iam/security-credentials/worker-role") if token_ok => {
                let mut body: Value = serde_json::from_slice(&credentials_json()).unwrap();
                if expired {
                    body["Expiration"] = json!("2001-01-01T00:00:00Z");
                }
                response("200 OK", &[], body.to_string().as_bytes())
            }
            _ => response("401 Unauthorized", &[], b""),
        }
    }
}

#[test]
fn ec2_instance_metadata_v2_with_its_session_token() {
    let Some(moto) = moto() else { return };
    let reg = ecr_registry(ACCOUNT);
    let source = chain_source(reg);
    let rt = runtime();
    let server = rt.block_on(FakeServer::start(imds_handler(false)));
    let endpoint = format!("http://{}", server.host);
    let check = chain_check(
        moto,
        &source,
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)],
    );
    check
        .expect_success()
        .expect_stderr("EC2 instance metadata")
        .expect_not_leaked(SECRET_KEY)
        .expect_not_leaked("imds-session-7f3a");
    assert_eq!(
        server.log(),
        [
            "PUT /latest/api/token",
            "GET /latest/meta-data/iam/security-credentials/",
            "GET /latest/meta-data/iam/security-credentials/worker-role",
        ]
    );

    let expired = rt.block_on(FakeServer::start(imds_handler(true)));
    chain_check(
        moto,
        &source,
        &[(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            &format!("http://{}", expired.host),
        )],
    )
    .expect_failure()
    .expect_stderr("expired at 2001-01-01T00:00:00Z");

    // Nothing answers: the error names the hop limit, the usual cause in
    // a container on EC2.
    let dead = format!("http://127.0.0.1:{}", process::free_port());
    chain_check(
        moto,
        &source,
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &dead)],
    )
    .expect_failure()
    .expect_stderr("hop limit");
    chain_check(moto, &source, &[("AWS_EC2_METADATA_DISABLED", "true")])
        .expect_failure()
        .expect_stderr("no AWS credentials");
}
