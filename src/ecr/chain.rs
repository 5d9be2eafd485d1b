//! AWS credentials from the standard chain, for a source without
//! `aws_access_key_id`: the providers the AWS SDKs try, in their order, as
//! far as a worker on EKS, ECS or EC2 needs them.
//!
//! 1. Environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
//!    (`AWS_SESSION_TOKEN`).
//! 2. Web identity (EKS IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` and
//!    `AWS_ROLE_ARN` (`AWS_ROLE_SESSION_NAME`): STS
//!    `AssumeRoleWithWebIdentity`, an unsigned call with the token.
//! 3. Container credentials (ECS task roles, EKS Pod Identity):
//!    `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on `169.254.170.2`) or
//!    `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with the `Authorization` value
//!    from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read on each call: the
//!    agent rotates it) or `AWS_CONTAINER_AUTHORIZATION_TOKEN`. A full URI
//!    must be https, or http to a loopback address or to the ECS/EKS agent
//!    addresses, as the SDKs require.
//! 4. EC2 instance metadata, IMDSv2 only: a session token (`PUT
//!    /latest/api/token`), then the role name and its credentials. The
//!    endpoint is `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else
//!    `http://169.254.169.254`; `AWS_EC2_METADATA_DISABLED=true` skips it.
//!    IMDSv2's token answer has an IP hop limit (1 by default): in a
//!    container on EC2 it needs 2, which the error then says.
//!
//! A provider whose variables are not set is skipped; one that is set and
//! fails is the error (the SDKs do the same), so a broken IRSA setup does
//! not silently fall through to the node's role. The credentials are
//! fetched once per step and used at once for STS and ECR, which take
//! seconds: no refresh is needed, but credentials that have already
//! expired are refused.

use std::time::Duration;

use serde_json::Value;

use super::{Endpoints, Error, Keys, env_keys, form_encode, xml_text};
use crate::secret::Secret;

/// ECS's agent address for `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
const ECS_HOST: &str = "http://169.254.170.2";
/// Hosts an http:// full URI may name besides loopback (ECS, EKS Pod
/// Identity), as the SDKs allow.
const CONTAINER_HOSTS: &[&str] = &["169.254.170.2", "169.254.170.23", "[fd00:ec2::23]"];
/// IMDS's default endpoint.
const IMDS_DEFAULT: &str = "http://169.254.169.254";
/// A metadata call's deadline: IMDS answers in milliseconds, and a worker
/// that is not on EC2 must not wait long.
const IMDS_TIMEOUT: Duration = Duration::from_secs(2);

/// The first provider that is configured, tried in the chain's order.
pub(super) async fn keys(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Keys, Error> {
    if let Some(keys) = env_keys() {
        tracing::debug!("AWS credentials from the environment");
        return Ok(keys);
    }
    if let (Some(file), Some(role)) = (var("AWS_WEB_IDENTITY_TOKEN_FILE"), var("AWS_ROLE_ARN")) {
        tracing::info!("AWS credentials: web identity token {file} for {role}");
        return web_identity(http, endpoints, &file, &role, var).await;
    }
    if let Some(url) = container_url(var)? {
        tracing::info!("AWS credentials: container credentials from {url}");
        return container(http, &url, var).await;
    }
    if var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(Error::NoCredentials);
    }
    let endpoint = var("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| IMDS_DEFAULT.into());
    tracing::info!("AWS credentials: EC2 instance metadata at {endpoint}");
    imds(http, endpoint.trim_end_matches('/')).await
}

/// STS `AssumeRoleWithWebIdentity` with the token file's contents.
async fn web_identity(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    file: &str,
    role: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Keys, Error> {
    let name = format!("sts:AssumeRoleWithWebIdentity {role}");
    let token =
        crate::small_file::read(std::path::Path::new(file), crate::small_file::SECRET_LIMIT)
            .map_err(|e| {
                answer(
                    &name,
                    format!("reading AWS_WEB_IDENTITY_TOKEN_FILE {file}: {e}"),
                )
            })?;
    let token = String::from_utf8_lossy(&token).trim().to_string();
    crate::secret::remember(&token);
    let session = var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "oci-build-resource".into());
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
        form_encode(role),
        form_encode(&session),
        form_encode(&token)
    );
    let response = http
        .post(&endpoints.sts)
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| transport(&name, &endpoints.sts, e))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| transport(&name, &endpoints.sts, e))?;
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
            .ok_or_else(|| answer(&name, format!("no <{tag}> in the answer")))
    };
    Ok(Keys {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Some(Secret::new(field("SessionToken")?)),
    })
}

/// The container credentials URL, when one of its variables is set.
fn container_url(var: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, Error> {
    if let Some(relative) = var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        return Ok(Some(format!("{ECS_HOST}{relative}")));
    }
    let Some(full) = var("AWS_CONTAINER_CREDENTIALS_FULL_URI") else {
        return Ok(None);
    };
    let allowed = full.starts_with("https://")
        || super::is_loopback_http(&full)
        || full.strip_prefix("http://").is_some_and(|rest| {
            let authority = rest.split('/').next().unwrap_or_default();
            CONTAINER_HOSTS.iter().any(|h| {
                authority == *h
                    || authority
                        .strip_prefix(h)
                        .is_some_and(|p| p.starts_with(':'))
            })
        });
    if !allowed {
        return Err(Error::Answer {
            call: "container credentials".into(),
            source: format!(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI={full:?} is refused: it must be https://, or http:// \
                 to a loopback address or the ECS/EKS agent (169.254.170.2, 169.254.170.23)"
            )
            .into(),
        });
    }
    Ok(Some(full))
}

/// GET the container credentials, with the agent's token when one is given.
async fn container(
    http: &reqwest::Client,
    url: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Keys, Error> {
    let name = "container credentials";
    let token = match var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(file) => {
            let bytes = crate::small_file::read(
                std::path::Path::new(&file),
                crate::small_file::SECRET_LIMIT,
            )
            .map_err(|e| {
                answer(
                    name,
                    format!("reading AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {file}: {e}"),
                )
            })?;
            Some(String::from_utf8_lossy(&bytes).trim().to_string())
        }
        None => var("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    };
    let mut request = http.get(url).timeout(Duration::from_secs(5));
    if let Some(token) = &token {
        crate::secret::remember(token);
        request = request.header("authorization", token);
    }
    let response = request.send().await.map_err(|e| transport(name, url, e))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| transport(name, url, e))?;
    if status != 200 {
        let value: Value = serde_json::from_str(&text).unwrap_or_default();
        return Err(Error::Refused {
            call: name.into(),
            status,
            code: value["code"].as_str().unwrap_or("(no code)").into(),
            message: value["message"].as_str().unwrap_or("").into(),
        });
    }
    json_keys(name, &text)
}

/// IMDSv2: session token, role name, the role's credentials.
async fn imds(http: &reqwest::Client, endpoint: &str) -> Result<Keys, Error> {
    let name = "EC2 instance metadata";
    let token_url = format!("{endpoint}/latest/api/token");
    let token = http
        .put(&token_url)
        .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
        .timeout(IMDS_TIMEOUT)
        .send()
        .await
        .map_err(|e| Error::Transport {
            call: format!("{name} (IMDSv2 session token)"),
            endpoint: token_url.clone(),
            source: format!(
                "{}; no other AWS credentials were found (source.aws_access_key_id, AWS_ACCESS_KEY_ID, \
                 web identity, container credentials); in a container on EC2, the instance's metadata \
                 hop limit must be 2 or more (aws ec2 modify-instance-metadata-options \
                 --http-put-response-hop-limit 2)",
                crate::oci::error_chain(&e)
            )
            .into(),
        })?;
    let token = ok_text(name, &token_url, token).await?;
    crate::secret::remember(&token);
    let get = |path: String| {
        let url = format!("{endpoint}{path}");
        let request = http
            .get(url.clone())
            .header("x-aws-ec2-metadata-token", token.as_str())
            .timeout(IMDS_TIMEOUT);
        async move {
            let response = request.send().await.map_err(|e| transport(name, &url, e))?;
            ok_text(name, &url, response).await
        }
    };
    let roles = get("/latest/meta-data/iam/security-credentials/".into()).await?;
    let role = roles
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| {
            answer(
                name,
                "the instance has no IAM role (instance profile)".into(),
            )
        })?
        .to_string();
    let text = get(format!("/latest/meta-data/iam/security-credentials/{role}")).await?;
    json_keys(name, &text)
}

async fn ok_text(name: &str, url: &str, response: reqwest::Response) -> Result<String, Error> {
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| transport(name, url, e))?;
    if status != 200 {
        return Err(Error::Refused {
            call: format!("{name} {url}"),
            status,
            code: "(no code)".into(),
            message: text.chars().take(200).collect(),
        });
    }
    Ok(text)
}

/// The keys of an ECS or IMDS answer (`AccessKeyId`, `SecretAccessKey`,
/// `Token`, `Expiration`); expired ones are refused.
fn json_keys(name: &str, text: &str) -> Result<Keys, Error> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| answer(name, format!("the answer is not JSON: {e}")))?;
    if let Some(code) = value["Code"].as_str().filter(|c| *c != "Success") {
        return Err(answer(name, format!("the answer's Code is {code:?}")));
    }
    let field = |k: &str| {
        value[k]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| answer(name, format!("no {k} in the answer")))
    };
    if let Some(expiration) = value["Expiration"].as_str()
        && let Ok(at) = chrono::DateTime::parse_from_rfc3339(expiration)
        && at.timestamp() <= chrono_now()
    {
        return Err(answer(
            name,
            format!("the credentials expired at {expiration}"),
        ));
    }
    let keys = Keys {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: value["Token"].as_str().map(Secret::new),
    };
    crate::secret::remember(keys.secret_access_key.expose());
    if let Some(t) = &keys.session_token {
        crate::secret::remember(t.expose());
    }
    Ok(keys)
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn answer(call: &str, problem: String) -> Error {
    Error::Answer {
        call: call.into(),
        source: problem.into(),
    }
}

fn transport(call: &str, endpoint: &str, e: reqwest::Error) -> Error {
    Error::Transport {
        call: call.into(),
        endpoint: endpoint.into(),
        source: Box::new(e),
    }
}
