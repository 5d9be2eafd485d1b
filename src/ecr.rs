//! Amazon ECR authentication (`source.aws_*`, on when `aws_region` is set):
//! assume the configured roles in order with STS, ask ECR for an
//! authorization token, and turn the source into one with registry
//! credentials `AWS` / `<token password>` and, when `repository` names no
//! host, the ECR registry host in front of it. Every step then uses those
//! credentials as it uses `username`/`password`: check and get through the
//! registry client, put for its own push and for the BuildKit session's auth
//! provider (push, cache, `FROM` pulls from the same registry; see
//! `registry_auth` in src/put/run.rs).
//!
//! Two AWS calls only, so this is a small SigV4 client (the `aws-sigv4`
//! crate signs; reqwest, already used by the registry client, sends) rather
//! than the AWS SDK, at a third of its build time and binary size (figures in
//! docs/decisions.md, "ECR: a SigV4 client, not the AWS SDK").
//!
//! Credentials come from `aws_access_key_id`/`aws_secret_access_key`
//! (`aws_session_token`), else from the standard chain as far as workers
//! need it: environment, web identity, container credentials, EC2 instance
//! metadata (src/ecr/chain.rs; why not the SDK's `aws-config`:
//! docs/decisions.md). Shared config and credential files, SSO and
//! `credential_process` are not read.
//!
//! The endpoints are AWS's, by region. [`TEST_ENDPOINT_ENV`] replaces both
//! for the tests (moto on 127.0.0.1); it is accepted only for a loopback
//! `http://` address, so it cannot send credentials elsewhere.

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;

use crate::config::{Ecr, Replica, Source};
use crate::registry::Repository;
use crate::secret::Secret;

/// Test-only: an `http://127.0.0.1:PORT` (or `localhost`, `[::1]`) URL that
/// serves both STS and ECR (moto). Not for production: anything but a
/// loopback address is refused.
pub const TEST_ENDPOINT_ENV: &str = "OCI_BUILD_RESOURCE_TEST_AWS_ENDPOINT";

/// An ECR authentication failure. Messages never hold a secret key, session
/// token or registry password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No static keys in the source, and no provider of the standard chain
    /// is configured (instance metadata turned off).
    #[error(
        "no AWS credentials: set source.aws_access_key_id and source.aws_secret_access_key, or give \
         the worker credentials the AWS SDKs find (AWS_ACCESS_KEY_ID, a web identity token, container \
         credentials, an EC2 instance profile; AWS_EC2_METADATA_DISABLED is set)"
    )]
    NoCredentials,
    /// The test endpoint variable is set to something else than loopback.
    #[error(
        "{TEST_ENDPOINT_ENV}={0:?} is refused: it is a test-only setting and must be an http:// loopback address"
    )]
    TestEndpoint(String),
    /// An AWS call could not be made or answered.
    #[error("{call} at {endpoint} failed")]
    Transport {
        /// e.g. `sts:AssumeRole arn:aws:iam::1:role/a`.
        call: String,
        /// The endpoint URL.
        endpoint: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// AWS answered with an error.
    #[error("{call} was refused with HTTP {status}: {code}: {message}")]
    Refused {
        /// e.g. `ecr:GetAuthorizationToken`.
        call: String,
        /// HTTP status.
        status: u16,
        /// AWS error code, e.g. `InvalidClientTokenId`.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// AWS answered, but not with what the call returns.
    #[error("{call} returned an unexpected answer")]
    Answer {
        /// The call.
        call: String,
        /// What was missing or wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The outcome of [`login`]: registry host and password for user `AWS`.
#[derive(Debug, Clone)]
pub struct Login {
    /// `<account>.dkr.ecr.<region>.amazonaws.com` (or the token's proxy
    /// endpoint host).
    pub host: String,
    /// The token's password.
    pub password: Secret,
}

/// AWS credentials for signing.
#[derive(Clone)]
struct Keys {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

/// Why [`authenticate`] could not apply ECR credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// STS or ECR refused, or could not be reached.
    #[error("cannot authenticate with ECR")]
    Login(#[source] Box<Error>),
    /// The token's registry and `aws_repository` make no valid repository.
    #[error("the ECR repository {text:?} is not a valid repository name: {problem}")]
    Repository {
        /// `<registry>/<aws_repository>`.
        text: String,
        /// Why it is not valid.
        problem: String,
    },
}

/// `source` with ECR credentials applied when `source.ecr` is set (else as
/// given): `username` `AWS`, the token's password, and the repository on the
/// ECR host when it named none.
pub async fn authenticate(source: Source) -> Result<Source, AuthError> {
    let Some(ecr) = source.ecr.clone() else {
        return Ok(source);
    };
    if ecr.deprecated_registry_id {
        tracing::warn!(
            "source.aws_ecr_registry_id is deprecated and not used: the registry is \
             source.aws_account_id's, or the one the token is for"
        );
    }
    let login = login(&ecr)
        .await
        .map_err(|e| AuthError::Login(Box::new(e)))?;
    with_login(source, &ecr, login)
}

/// A `replicate_to` entry with its ECR credentials applied, as
/// [`authenticate`] does for the source.
pub async fn authenticate_replica(mut replica: Replica) -> Result<Replica, AuthError> {
    let Some(ecr) = replica.ecr.clone() else {
        return Ok(replica);
    };
    let login = login(&ecr)
        .await
        .map_err(|e| AuthError::Login(Box::new(e)))?;
    if let Some(name) = &ecr.repository_name {
        let text = format!("{}/{name}", login.host);
        replica.repository = Repository::parse(&text).map_err(|e| AuthError::Repository {
            problem: e.to_string(),
            text,
        })?;
    }
    tracing::info!(
        "authenticated with ECR in {} for the replica {}",
        ecr.region,
        replica.repository.registry
    );
    crate::secret::remember(login.password.expose());
    replica.username = Some("AWS".into());
    replica.password = Some(login.password);
    Ok(replica)
}

/// `source` with `login` applied (see [`authenticate`]).
fn with_login(mut source: Source, ecr: &Ecr, login: Login) -> Result<Source, AuthError> {
    if let Some(name) = &ecr.repository_name {
        let text = format!("{}/{name}", login.host);
        source.repository = Repository::parse(&text).map_err(|e| AuthError::Repository {
            problem: e.to_string(),
            text,
        })?;
    }
    tracing::info!(
        "authenticated with ECR in {} for {}",
        ecr.region,
        source.repository.registry
    );
    source.username = Some("AWS".into());
    source.password = Some(login.password);
    Ok(source)
}

/// Assumes `ecr.role_arns` in order, then gets an ECR authorization token.
/// Without keys in the source the credentials come from the standard chain
/// (src/ecr/chain.rs).
pub async fn login(ecr: &Ecr) -> Result<Login, Error> {
    let endpoints = Endpoints::new(&ecr.region)?;
    crate::tls::install_crypto_provider();
    let http = reqwest::Client::builder()
        .user_agent(concat!("oci-build-resource/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Transport {
            call: "building the AWS HTTP client".into(),
            endpoint: endpoints.sts.clone(),
            source: Box::new(e),
        })?;
    let mut keys = match (&ecr.access_key_id, &ecr.secret_access_key) {
        (Some(id), Some(secret)) => Keys {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            session_token: ecr.session_token.clone(),
        },
        _ => {
            let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            chain::keys(&http, &endpoints, &var).await?
        }
    };
    for arn in &ecr.role_arns {
        keys = assume_role(&http, &endpoints, &ecr.region, &keys, arn).await?;
    }
    get_token(&http, &endpoints, ecr, &keys).await
}

fn env_keys() -> Option<Keys> {
    let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    Some(Keys {
        access_key_id: var("AWS_ACCESS_KEY_ID")?,
        secret_access_key: Secret::new(var("AWS_SECRET_ACCESS_KEY")?),
        session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
    })
}

struct Endpoints {
    sts: String,
    ecr: String,
}

impl Endpoints {
    fn new(region: &str) -> Result<Endpoints, Error> {
        if let Ok(url) = std::env::var(TEST_ENDPOINT_ENV) {
            if !is_loopback_http(&url) {
                return Err(Error::TestEndpoint(url));
            }
            tracing::warn!("{TEST_ENDPOINT_ENV} is set: STS and ECR calls go to {url} (test only)");
            let url = format!("{}/", url.trim_end_matches('/'));
            return Ok(Endpoints {
                sts: url.clone(),
                ecr: url,
            });
        }
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Ok(Endpoints {
            sts: format!("https://sts.{region}.{suffix}/"),
            ecr: format!("https://api.ecr.{region}.{suffix}/"),
        })
    }
}

fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Where one AWS call goes.
struct Target<'a> {
    /// For messages, e.g. `sts:AssumeRole <arn>`.
    name: &'a str,
    endpoint: &'a str,
    /// SigV4 service name (`sts`, `ecr`).
    service: &'a str,
    region: &'a str,
}

/// Signs and sends one POST; answers status, body and the
/// `x-amzn-ErrorType` header's code.
async fn call(
    http: &reqwest::Client,
    target: &Target<'_>,
    keys: &Keys,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>, Option<String>), Error> {
    let Target {
        name: call,
        endpoint,
        service,
        region,
    } = *target;
    let transport = |source: Box<dyn std::error::Error + Send + Sync>| Error::Transport {
        call: call.to_owned(),
        endpoint: endpoint.to_owned(),
        source,
    };
    let identity = aws_credential_types::Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.expose().to_owned(),
        keys.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "oci-build-resource",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| transport(Box::new(e)))?
        .into();
    let mut request = http::Request::builder().method("POST").uri(endpoint);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut request = request
        .body(body.clone())
        .map_err(|e| transport(Box::new(e)))?;
    let signable = SignableRequest::new(
        "POST",
        endpoint,
        headers.iter().copied(),
        SignableBody::Bytes(&body),
    )
    .map_err(|e| transport(Box::new(e)))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| transport(Box::new(e)))?
        .into_parts();
    instructions.apply_to_request_http1x(&mut request);
    let mut send = http.post(endpoint).body(body);
    for (k, v) in request.headers() {
        send = send.header(k, v);
    }
    let response = send.send().await.map_err(|e| transport(Box::new(e)))?;
    let status = response.status().as_u16();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_owned());
    let bytes = response.bytes().await.map_err(|e| transport(Box::new(e)))?;
    Ok((status, bytes.to_vec(), error_type))
}

/// STS AssumeRole (query API, XML answer) with `keys`; answers the role's
/// temporary keys.
async fn assume_role(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    region: &str,
    keys: &Keys,
    arn: &str,
) -> Result<Keys, Error> {
    let name = format!("sts:AssumeRole {arn}");
    let body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleSessionName=oci-build-resource&RoleArn={}",
        form_encode(arn)
    );
    let target = Target {
        name: &name,
        endpoint: &endpoints.sts,
        service: "sts",
        region,
    };
    let (status, bytes, _) = call(
        http,
        &target,
        keys,
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body.into_bytes(),
    )
    .await?;
    let text = String::from_utf8_lossy(&bytes);
    if status != 200 {
        return Err(Error::Refused {
            call: name,
            status,
            code: xml_text(&text, "Code").unwrap_or("(no code)").to_owned(),
            message: xml_text(&text, "Message").unwrap_or("").to_owned(),
        });
    }
    let field = |tag: &str| {
        xml_text(&text, tag)
            .map(str::to_owned)
            .ok_or_else(|| Error::Answer {
                call: name.clone(),
                source: format!("no <{tag}> in the answer").into(),
            })
    };
    Ok(Keys {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Some(Secret::new(field("SessionToken")?)),
    })
}

/// ECR GetAuthorizationToken (JSON 1.1 API).
async fn get_token(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    ecr: &Ecr,
    keys: &Keys,
) -> Result<Login, Error> {
    let name = "ecr:GetAuthorizationToken".to_owned();
    let body = match &ecr.account_id {
        Some(id) => serde_json::json!({ "registryIds": [id] }),
        None => serde_json::json!({}),
    };
    let target = Target {
        name: &name,
        endpoint: &endpoints.ecr,
        service: "ecr",
        region: &ecr.region,
    };
    let (status, bytes, error_type) = call(
        http,
        &target,
        keys,
        &[
            ("content-type", "application/x-amz-json-1.1"),
            (
                "x-amz-target",
                "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
            ),
        ],
        body.to_string().into_bytes(),
    )
    .await?;
    let answer = |source: Box<dyn std::error::Error + Send + Sync>| Error::Answer {
        call: name.clone(),
        source,
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status != 200 {
        // JSON as the protocol says, or the query protocol's XML, which
        // auth failures come in from some front ends (moto's among them).
        let text = String::from_utf8_lossy(&bytes);
        let code = error_type
            .or_else(|| {
                value["__type"]
                    .as_str()
                    .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            })
            .or_else(|| xml_text(&text, "Code").map(str::to_owned))
            .unwrap_or_else(|| "(no code)".into());
        let message = value["message"]
            .as_str()
            .or(value["Message"].as_str())
            .or_else(|| xml_text(&text, "Message"))
            .unwrap_or("")
            .to_owned();
        return Err(Error::Refused {
            call: name,
            status,
            code,
            message,
        });
    }
    let data = &value["authorizationData"][0];
    let token = data["authorizationToken"]
        .as_str()
        .ok_or_else(|| answer("no authorizationData[0].authorizationToken".into()))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| answer("the authorization token is not base64".into()))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| answer("the authorization token is not text".into()))?;
    let password = match decoded.split_once(':') {
        Some(("AWS", password)) if !password.is_empty() => Secret::new(password),
        _ => {
            return Err(answer(
                "the authorization token is not AWS:<password>".into(),
            ));
        }
    };
    let host = registry_host(ecr, data["proxyEndpoint"].as_str())
        .ok_or_else(|| answer("no authorizationData[0].proxyEndpoint".into()))?;
    Ok(Login { host, password })
}

/// `<account>.dkr.ecr.<region>.amazonaws.com` with `aws_account_id`
/// (registry-image's rule: always `.amazonaws.com`), else the host of the
/// token's proxy endpoint.
fn registry_host(ecr: &Ecr, proxy_endpoint: Option<&str>) -> Option<String> {
    match &ecr.account_id {
        Some(id) => Some(format!("{id}.dkr.ecr.{}.amazonaws.com", ecr.region)),
        None => {
            let endpoint = proxy_endpoint?;
            let host = endpoint
                .split_once("://")
                .map_or(endpoint, |(_, rest)| rest)
                .trim_end_matches('/');
            (!host.is_empty()).then(|| host.to_owned())
        }
    }
}

/// The text of the first `<tag>…</tag>` in `xml` (STS answers are flat
/// enough for this; entities do not occur in keys, tokens or codes).
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim())
}

/// `application/x-www-form-urlencoded` value encoding.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

mod chain;

#[cfg(test)]
mod tests;
