//! `source`: the resource configuration shared by check, get and put.
//!
//! [`RawSource`] mirrors the JSON (every registry-image field, plus the
//! docker-image/oci-build-task fields that `put` uses); [`Source`] is the
//! validated form. Validation happens once, here, so commands never see an
//! unparsed regex, constraint or repository.

use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::decode::{self, DecodeError, Shape};
use super::fields::{CA_CERT, RawCaCert, basic_auth, ca_certs, non_empty, repository};
use super::replica::Replica;
use super::semver::{Constraint, SemverOptions};
use super::{Error, Secret};
use crate::registry::TlsOptions;
pub use crate::registry::{DOCKER_HUB_HOST, Repository};

const CREDENTIALS: Shape = Shape::Object(&[
    ("host", Shape::Leaf),
    ("username", Shape::Leaf),
    ("password", Shape::Secret),
]);
const PLATFORM: Shape = Shape::Object(&[
    ("os", Shape::Leaf),
    ("architecture", Shape::Leaf),
    ("variant", Shape::Leaf),
]);
const BUILDKIT_TLS: Shape = Shape::Object(&[
    ("ca_cert", Shape::Leaf),
    ("cert", Shape::Leaf),
    ("key", Shape::Secret),
    ("server_name", Shape::Leaf),
]);
const BUILDKIT_SSH: Shape =
    Shape::Object(&[("private_key", Shape::Secret), ("known_hosts", Shape::Leaf)]);
const CONTENT_TRUST: Shape = Shape::Object(&[
    ("server", Shape::Leaf),
    ("repository_key_id", Shape::Leaf),
    ("repository_key", Shape::Leaf),
    ("repository_passphrase", Shape::Leaf),
    ("tls_key", Shape::Leaf),
    ("tls_cert", Shape::Leaf),
    ("username", Shape::Leaf),
    ("password", Shape::Secret),
    ("scopes", Shape::Leaf),
]);

/// Every key `source` accepts (canonical spelling).
pub const SHAPE: Shape = Shape::Object(&[
    ("repository", Shape::Leaf),
    ("tag", Shape::Leaf),
    ("tag_regex", Shape::Leaf),
    ("created_at_sort", Shape::Leaf),
    ("variant", Shape::Leaf),
    ("semver_constraint", Shape::Leaf),
    ("pre_releases", Shape::Leaf),
    ("pre_release_prefixes", Shape::Leaf),
    ("username", Shape::Leaf),
    ("password", Shape::Secret),
    ("ca_certs", Shape::List(&Shape::ScalarOr(&CA_CERT))),
    ("insecure", Shape::Leaf),
    ("registry_mirror", CREDENTIALS),
    ("platform", PLATFORM),
    ("label_regex", Shape::Leaf),
    ("annotation_regex", Shape::Leaf),
    ("debug", Shape::Leaf),
    ("aws_access_key_id", Shape::Leaf),
    ("aws_secret_access_key", Shape::Secret),
    ("aws_session_token", Shape::Secret),
    ("aws_region", Shape::Leaf),
    ("aws_role_arn", Shape::Leaf),
    ("aws_role_arns", Shape::Leaf),
    ("aws_account_id", Shape::Leaf),
    ("aws_ecr_registry_id", Shape::Leaf),
    ("azure_acr", Shape::Leaf),
    ("azure_client_id", Shape::Leaf),
    ("azure_tenant_id", Shape::Leaf),
    ("azure_environment", Shape::Leaf),
    ("content_trust", CONTENT_TRUST),
    ("buildkit_host", Shape::Leaf),
    ("buildkit_tls", BUILDKIT_TLS),
    ("buildkit_ssh", BUILDKIT_SSH),
    ("additional_registries", Shape::List(&CREDENTIALS)),
    ("registry_timeout", Shape::Leaf),
    ("buildkit_timeout", Shape::Leaf),
    ("sign", super::signing::SIGN),
    ("verify", super::signing::VERIFY),
    ("replicate_to", Shape::List(&super::replica::SHAPE)),
]);

/// `source` as written, after key canonicalisation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    #[serde(default)]
    repository: String,
    tag: Option<Value>,
    #[serde(default)]
    tag_regex: String,
    #[serde(default)]
    created_at_sort: bool,
    #[serde(default)]
    variant: String,
    #[serde(default)]
    semver_constraint: String,
    #[serde(default)]
    pre_releases: bool,
    #[serde(default)]
    pre_release_prefixes: Vec<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: Secret,
    #[serde(default)]
    ca_certs: Vec<RawCaCert>,
    #[serde(default)]
    insecure: bool,
    registry_mirror: Option<RawCredentials>,
    platform: Option<RawPlatform>,
    #[serde(default)]
    label_regex: String,
    #[serde(default)]
    annotation_regex: String,
    #[serde(default)]
    debug: bool,
    #[serde(default)]
    aws_access_key_id: String,
    #[serde(default)]
    aws_secret_access_key: Secret,
    #[serde(default)]
    aws_session_token: Secret,
    #[serde(default)]
    aws_region: String,
    #[serde(default)]
    aws_role_arn: String,
    #[serde(default)]
    aws_role_arns: Vec<String>,
    #[serde(default)]
    aws_account_id: String,
    #[serde(default)]
    aws_ecr_registry_id: String,
    // Parsed so that a typo is still reported; any non-zero value is
    // rejected in validation as not supported yet.
    #[serde(default)]
    azure_acr: bool,
    #[serde(default)]
    azure_client_id: String,
    #[serde(default)]
    azure_tenant_id: String,
    #[serde(default)]
    azure_environment: String,
    content_trust: Option<Value>,
    #[serde(default)]
    buildkit_host: String,
    buildkit_tls: Option<RawBuildkitTls>,
    buildkit_ssh: Option<RawBuildkitSsh>,
    #[serde(default)]
    additional_registries: Vec<RawCredentials>,
    registry_timeout: Option<Value>,
    buildkit_timeout: Option<Value>,
    sign: Option<super::signing::RawSign>,
    verify: Option<super::signing::RawVerify>,
    #[serde(default)]
    replicate_to: Vec<super::replica::RawReplica>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuildkitSsh {
    #[serde(default)]
    private_key: Secret,
    #[serde(default)]
    known_hosts: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    #[serde(default)]
    host: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: Secret,
}

/// `platform` as `source` and get params spell it; empty fields are unset.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: String,
}

impl From<RawPlatform> for Platform {
    fn from(p: RawPlatform) -> Platform {
        Platform {
            os: non_empty(p.os),
            architecture: non_empty(p.architecture),
            variant: non_empty(p.variant),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuildkitTls {
    #[serde(default)]
    ca_cert: String,
    #[serde(default)]
    cert: String,
    #[serde(default)]
    key: Secret,
    #[serde(default)]
    server_name: String,
}

/// Credentials and host of a mirror or an extra registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// Registry host (and port).
    pub host: String,
    /// User name; `None` when empty.
    pub username: Option<String>,
    /// Password; `None` when empty.
    pub password: Option<Secret>,
}

/// `registry_mirror`: a pull-through mirror for Docker Hub repositories.
pub type RegistryMirror = RegistryCredentials;

/// A wanted platform; unset fields mean "this binary's own" (GOOS/GOARCH in
/// registry-image), resolved by the consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: Option<String>,
    /// e.g. `arm64`.
    pub architecture: Option<String>,
    /// e.g. `v7`; registry-image has no such field, we accept it for arm.
    pub variant: Option<String>,
}

/// `buildkit_tls`: client TLS to a remote buildkitd (PEM text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildkitTls {
    /// CA to verify buildkitd.
    pub ca_cert: Option<String>,
    /// Client certificate.
    pub cert: Option<String>,
    /// Client key.
    pub key: Option<Secret>,
    /// Name to verify buildkitd's certificate against.
    pub server_name: Option<String>,
}

/// `buildkit_ssh`: the identity and host keys for an `ssh://` buildkit_host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildkitSsh {
    /// Private key (OpenSSH or PEM text), unencrypted.
    pub private_key: Secret,
    /// known_hosts lines for the host (`[host]:port key` for a port other
    /// than 22); empty means no host is trusted, so the connection fails.
    pub known_hosts: String,
}

/// The `aws_*` fields: ECR authentication, on when `aws_region` is set
/// (registry-image: no detection from the host name). Used by
/// [`crate::ecr`], which turns it into registry credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ecr {
    /// `aws_region`.
    pub region: String,
    /// `aws_access_key_id`; with the secret key, else the `AWS_*`
    /// environment variables are used.
    pub access_key_id: Option<String>,
    /// `aws_secret_access_key`.
    pub secret_access_key: Option<Secret>,
    /// `aws_session_token`.
    pub session_token: Option<Secret>,
    /// `aws_role_arn` or `aws_role_arns`, assumed in this order.
    pub role_arns: Vec<String>,
    /// `aws_account_id`: the registry is `<id>.dkr.ecr.<region>.amazonaws.com`.
    pub account_id: Option<String>,
    /// `aws_ecr_registry_id` was given: deprecated, only warned about.
    pub deprecated_registry_id: bool,
    /// The repository as written, when it names no registry host: the ECR
    /// host is put in front of it once known. `None` when `repository`
    /// names its host (then that host gets the token).
    pub repository_name: Option<String>,
}

/// What check follows, decided by which of `tag`/`tag_regex` are set.
#[derive(Debug, Clone)]
pub enum CheckMode {
    /// `tag` set: follow that tag's digest.
    Tag(String),
    /// `tag_regex` set (and no `tag`): every matching tag.
    Regex(Regex),
    /// Neither: semantic-version tags.
    Semver,
}

/// The validated `source`.
#[derive(Debug, Clone)]
pub struct Source {
    /// Repository to check/get/push.
    pub repository: Repository,
    /// `tag` (numbers kept as their literal text).
    pub tag: Option<String>,
    /// `tag_regex`.
    pub tag_regex: Option<Regex>,
    /// `created_at_sort` (regex mode only).
    pub created_at_sort: bool,
    /// `variant`.
    pub variant: Option<String>,
    /// `semver_constraint`, parsed.
    pub semver_constraint: Option<Constraint>,
    /// `pre_releases`.
    pub pre_releases: bool,
    /// `pre_release_prefixes`.
    pub pre_release_prefixes: Vec<String>,
    /// `username`, only when both it and `password` are non-empty.
    pub username: Option<String>,
    /// `password`, only when both it and `username` are non-empty.
    pub password: Option<Secret>,
    /// Extra CA certificates (PEM), trusted in addition to the system roots.
    pub ca_certs: Vec<String>,
    /// `insecure`: allow plain HTTP for this registry (TLS is still verified
    /// whenever TLS is used).
    pub insecure: bool,
    /// `registry_mirror`.
    pub registry_mirror: Option<RegistryMirror>,
    /// `platform`.
    pub platform: Option<Platform>,
    /// `label_regex`.
    pub label_regex: Option<Regex>,
    /// `annotation_regex`.
    pub annotation_regex: Option<Regex>,
    /// `debug`.
    pub debug: bool,
    /// `buildkit_host` (put only).
    pub buildkit_host: Option<String>,
    /// `buildkit_tls` (put only).
    pub buildkit_tls: Option<BuildkitTls>,
    /// `buildkit_ssh` (put only).
    pub buildkit_ssh: Option<BuildkitSsh>,
    /// `additional_registries` (put only).
    pub additional_registries: Vec<RegistryCredentials>,
    /// `registry_timeout`: idle-read timeout of registry requests; `None`
    /// is the registry client's default.
    pub registry_timeout: Option<Duration>,
    /// `buildkit_timeout` (put only): deadline for connecting to BuildKit
    /// and its first answer; `None` is the default.
    pub buildkit_timeout: Option<Duration>,
    /// `aws_*`: ECR authentication, when `aws_region` is set.
    pub ecr: Option<Ecr>,
    /// `sign` (put only): the key that signs what put pushes.
    pub sign: Option<super::signing::Signing>,
    /// `verify`: the public keys a version must be signed with.
    pub verify: Option<crate::sign::Verifier>,
    /// `replicate_to` (put only): more repositories each put pushes to.
    pub replicate_to: Vec<Replica>,
}

fn regex(field: &'static str, text: String) -> Result<Option<Regex>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    Regex::new(&text)
        .map(Some)
        .map_err(|source| Error::Regex { field, source })
}

impl Source {
    /// Decodes and validates `source` from the request. `value` may use any
    /// key case; `null` members are unset.
    pub fn from_value(value: Value) -> Result<Source, Error> {
        let value = decode::canonicalize(value, &SHAPE, "source")?;
        let raw: RawSource = decode::from_value(value, "source")?;
        Source::validate(raw)
    }

    /// Validates every field, in the order the fields' errors are reported
    /// (the first problem found is the one the user sees).
    fn validate(mut raw: RawSource) -> Result<Source, Error> {
        reject_unsupported(&raw)?;
        let ecr = super::aws::ecr(&aws_fields(&raw), &super::aws::SOURCE_FIELDS)?;
        let replicate_to = super::replica::replicas(std::mem::take(&mut raw.replicate_to))?;
        let repository = repository(&raw.repository)?;
        let tag = tag(raw.tag)?;
        let semver_constraint = semver_constraint(raw.semver_constraint)?;
        let (username, password) = basic_auth(raw.username, raw.password);
        let ca_certs = ca_certs(raw.ca_certs)?;
        let registry_mirror = raw.registry_mirror.and_then(credentials);
        let additional_registries = additional_registries(raw.additional_registries)?;
        let platform = raw.platform.map(Platform::from);
        let buildkit_tls = raw.buildkit_tls.map(buildkit_tls);
        let sign = super::signing::signing(raw.sign)?;
        let verify = super::signing::verifier(raw.verify)?;
        Ok(Source {
            repository,
            tag,
            tag_regex: regex("source.tag_regex", raw.tag_regex)?,
            created_at_sort: raw.created_at_sort,
            variant: non_empty(raw.variant),
            semver_constraint,
            pre_releases: raw.pre_releases,
            pre_release_prefixes: raw
                .pre_release_prefixes
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect(),
            username,
            password,
            ca_certs,
            insecure: raw.insecure,
            registry_mirror,
            platform,
            label_regex: regex("source.label_regex", raw.label_regex)?,
            annotation_regex: regex("source.annotation_regex", raw.annotation_regex)?,
            debug: raw.debug,
            buildkit_host: non_empty(raw.buildkit_host),
            buildkit_tls,
            buildkit_ssh: raw.buildkit_ssh.map(|s| BuildkitSsh {
                private_key: s.private_key,
                known_hosts: s.known_hosts,
            }),
            additional_registries,
            registry_timeout: duration("source.registry_timeout", raw.registry_timeout)?,
            buildkit_timeout: duration("source.buildkit_timeout", raw.buildkit_timeout)?,
            ecr,
            sign,
            verify,
            replicate_to,
        })
    }

    /// Hands every secret of this source (registry, mirror and additional
    /// registry passwords with their user names, `buildkit_tls.key`) to
    /// [`crate::secret::scrub`], which removes them from all output.
    pub fn remember_secrets(&self) {
        let basic = |user: Option<&str>, password: Option<&Secret>| {
            if let Some(p) = password {
                crate::secret::remember_basic(user.unwrap_or_default(), p.expose());
            }
        };
        basic(self.username.as_deref(), self.password.as_ref());
        for creds in self
            .registry_mirror
            .iter()
            .chain(&self.additional_registries)
        {
            basic(creds.username.as_deref(), creds.password.as_ref());
        }
        if let Some(key) = self.buildkit_tls.as_ref().and_then(|t| t.key.as_ref()) {
            crate::secret::remember(key.expose());
        }
        if let Some(ssh) = &self.buildkit_ssh {
            crate::secret::remember(ssh.private_key.expose());
        }
        for ecr in self
            .ecr
            .iter()
            .chain(self.replicate_to.iter().filter_map(|r| r.ecr.as_ref()))
        {
            for secret in ecr.secret_access_key.iter().chain(&ecr.session_token) {
                crate::secret::remember(secret.expose());
            }
        }
        if let Some(sign) = &self.sign {
            sign.remember_secrets();
        }
        for r in &self.replicate_to {
            basic(r.username.as_deref(), r.password.as_ref());
        }
    }

    /// Which check mode this source selects (`tag` beats `tag_regex`).
    pub fn check_mode(&self) -> CheckMode {
        match (&self.tag, &self.tag_regex) {
            (Some(tag), _) => CheckMode::Tag(tag.clone()),
            (None, Some(re)) => CheckMode::Regex(re.clone()),
            (None, None) => CheckMode::Semver,
        }
    }

    /// The semver-mode filters this source sets: check's semver mode and the
    /// tag a put reports (`put::tags::reported_tag`) read the same ones.
    pub fn semver_options(&self) -> SemverOptions<'_> {
        SemverOptions {
            variant: self.variant.as_deref(),
            constraint: self.semver_constraint.as_ref(),
            pre_releases: self.pre_releases,
            pre_release_prefixes: &self.pre_release_prefixes,
        }
    }

    /// The TLS and timeout settings every registry client of this source
    /// uses, whichever registry it talks to.
    pub fn tls_options(&self) -> TlsOptions {
        TlsOptions {
            ca_certs: self.ca_certs.clone(),
            insecure: self.insecure,
            read_timeout: self.registry_timeout,
        }
    }

    /// The mirror repository, when a mirror is configured and the repository
    /// is on Docker Hub (registry-image ignores the mirror otherwise).
    pub fn mirror_repository(&self) -> Option<(Repository, &RegistryMirror)> {
        let mirror = self.registry_mirror.as_ref()?;
        self.repository
            .is_docker_hub()
            .then(|| (self.repository.on_registry(&mirror.host), mirror))
    }
}

/// `tag`: a string or a number, checked against the tag grammar here so
/// that check and get never ask a registry for an impossible tag.
fn tag(value: Option<Value>) -> Result<Option<String>, Error> {
    let tag = match value {
        None => None,
        Some(Value::String(s)) => non_empty(s),
        // Requests arrive here with a number's literal text already
        // turned into a string (`decode::parse_keeping_number_text`, as
        // Go's json.Number keeps it); a `Value` built in code may still
        // hold a number, printed as serde_json prints it. Concourse's
        // YAML→JSON step has often normalised such numbers before we see
        // them (`tag: 1.10` arrives as 1.1): quote tags that are not
        // plain integers.
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(DecodeError::Type {
                path: "source.tag".into(),
                message: format!("expected a string or a number, got {other}"),
            }
            .into());
        }
    };
    if let Some(tag) = &tag {
        validate_tag(tag)?;
    }
    Ok(tag)
}

/// `semver_constraint`, parsed once so that check never meets a bad one.
fn semver_constraint(text: String) -> Result<Option<Constraint>, Error> {
    match non_empty(text) {
        None => Ok(None),
        Some(text) => Ok(Some(Constraint::parse(&text).map_err(|reason| {
            Error::Invalid {
                field: "source.semver_constraint",
                value: text.clone(),
                reason,
            }
        })?)),
    }
}

/// `additional_registries`: an entry without a host is an error, where a
/// mirror without one is ignored, because a list entry is only there on
/// purpose.
fn additional_registries(raw: Vec<RawCredentials>) -> Result<Vec<RegistryCredentials>, Error> {
    raw.into_iter()
        .map(|c| {
            credentials(c).ok_or(Error::Invalid {
                field: "source.additional_registries",
                value: String::new(),
                reason: "every entry needs a host".into(),
            })
        })
        .collect()
}

fn buildkit_tls(raw: RawBuildkitTls) -> BuildkitTls {
    BuildkitTls {
        ca_cert: non_empty(raw.ca_cert),
        cert: non_empty(raw.cert),
        key: (!raw.key.is_empty()).then_some(raw.key),
        server_name: non_empty(raw.server_name),
    }
}

/// A timeout: a number of seconds, or Go's duration syntax as Concourse
/// users write it elsewhere (`90s`, `1m30s`, `500ms`, `2h`). `null`, `0`
/// and `""` are unset, as for every other key.
fn duration(field: &'static str, value: Option<Value>) -> Result<Option<Duration>, Error> {
    let invalid = |value: String| Error::Invalid {
        field,
        value,
        reason: "expected a duration such as \"60s\", \"2m\" or \"1m30s\", or a number of seconds"
            .into(),
    };
    let seconds = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| invalid(n.to_string()))?,
        Some(Value::String(text)) if text.trim().is_empty() => return Ok(None),
        Some(Value::String(text)) => match text.trim().parse::<f64>() {
            // A number's literal text (see `decode::parse_keeping_number_text`).
            Ok(n) => n,
            Err(_) => go_duration(text.trim()).ok_or_else(|| invalid(text.clone()))?,
        },
        Some(other) => return Err(invalid(other.to_string())),
    };
    if !seconds.is_finite() || !(0.0..=7.0 * 24.0 * 3600.0).contains(&seconds) {
        return Err(Error::Invalid {
            field,
            value: seconds.to_string(),
            reason: "a timeout must be between 0 (the default) and 7 days".into(),
        });
    }
    Ok((seconds > 0.0).then(|| Duration::from_secs_f64(seconds)))
}

/// Seconds in a Go duration (`1h2m3.5s`, `250ms`; units h, m, s, ms).
fn go_duration(text: &str) -> Option<f64> {
    let mut rest = text;
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn credentials(raw: RawCredentials) -> Option<RegistryCredentials> {
    let host = non_empty(raw.host)?;
    let (username, password) = if raw.username.is_empty() || raw.password.is_empty() {
        (None, None)
    } else {
        (Some(raw.username), Some(raw.password))
    };
    Some(RegistryCredentials {
        host,
        username,
        password,
    })
}

fn validate_tag(tag: &str) -> Result<(), Error> {
    if crate::sign::storage::is_cosign_tag(tag) {
        return Err(Error::Invalid {
            field: "source.tag",
            value: tag.to_owned(),
            reason: "this is a tag cosign writes beside an image (signatures, attestations, SBOMs), not an image".into(),
        });
    }
    if super::tag::is_valid(tag) {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "source.tag",
            value: tag.to_owned(),
            reason: "a tag is up to 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'"
                .into(),
        })
    }
}

/// The source's `aws_*` fields, for [`super::aws::ecr`].
fn aws_fields(raw: &RawSource) -> super::aws::AwsFields<'_> {
    super::aws::AwsFields {
        region: &raw.aws_region,
        access_key_id: &raw.aws_access_key_id,
        secret_access_key: &raw.aws_secret_access_key,
        session_token: &raw.aws_session_token,
        role_arn: &raw.aws_role_arn,
        role_arns: &raw.aws_role_arns,
        account_id: &raw.aws_account_id,
        ecr_registry_id: &raw.aws_ecr_registry_id,
        repository: &raw.repository,
    }
}

/// Azure auth and content trust are registry-image features we do not
/// implement yet: refusing them beats silently pulling anonymously.
fn reject_unsupported(raw: &RawSource) -> Result<(), Error> {
    let aws = [
        ("azure_acr", raw.azure_acr),
        ("azure_client_id", !raw.azure_client_id.is_empty()),
        ("azure_tenant_id", !raw.azure_tenant_id.is_empty()),
        ("azure_environment", !raw.azure_environment.is_empty()),
        ("content_trust", raw.content_trust.is_some()),
    ];
    match aws.iter().find(|(_, set)| *set) {
        Some((name, _)) => {
            let what = if name.starts_with("azure") {
                "ACR authentication"
            } else {
                "Notary content trust"
            };
            Err(Error::Unsupported(format!("source.{name} ({what})")))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod secret_type_tests;
