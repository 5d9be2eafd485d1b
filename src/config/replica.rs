//! `source.replicate_to`: more repositories a put pushes the same image to
//! (same digest, same tags). Each entry has its own registry access:
//! `repository`, `username`/`password`, `ca_certs`, `insecure` and the
//! `aws_*` keys of ECR. check and get never read it.

use serde::Deserialize;

use super::aws::{self, AwsFields, REPLICA_FIELDS};
use super::decode::Shape;
use super::fields::{CA_CERT, RawCaCert, basic_auth, ca_certs, repository};
use super::{Ecr, Error, Repository, Secret};

/// The keys of one entry.
pub(super) const SHAPE: Shape = Shape::Object(&[
    ("repository", Shape::Leaf),
    ("username", Shape::Leaf),
    ("password", Shape::Secret),
    ("ca_certs", Shape::List(&Shape::ScalarOr(&CA_CERT))),
    ("insecure", Shape::Leaf),
    ("aws_access_key_id", Shape::Leaf),
    ("aws_secret_access_key", Shape::Secret),
    ("aws_session_token", Shape::Secret),
    ("aws_region", Shape::Leaf),
    ("aws_role_arn", Shape::Leaf),
    ("aws_role_arns", Shape::Leaf),
    ("aws_account_id", Shape::Leaf),
]);

/// One entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReplica {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: Secret,
    #[serde(default)]
    ca_certs: Vec<RawCaCert>,
    #[serde(default)]
    insecure: bool,
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
}

/// One validated `replicate_to` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Where the image goes; with ECR and no host in the text, the ECR
    /// host is put in front once logged in.
    pub repository: Repository,
    /// As written, for messages.
    pub given: String,
    /// User name, only with a password.
    pub username: Option<String>,
    /// Password, only with a user name.
    pub password: Option<Secret>,
    /// This registry's CAs (PEM), besides the system roots.
    pub ca_certs: Vec<String>,
    /// Plain HTTP allowed for this registry.
    pub insecure: bool,
    /// ECR authentication for this entry.
    pub ecr: Option<Ecr>,
}

/// Validates every entry; an error names the entry by index and repository.
pub(super) fn replicas(raw: Vec<RawReplica>) -> Result<Vec<Replica>, Error> {
    raw.into_iter()
        .enumerate()
        .map(|(index, r)| {
            let given = r.repository.clone();
            replica(r).map_err(|source| Error::Replica {
                index,
                repository: given,
                source: Box::new(source),
            })
        })
        .collect()
}

fn replica(raw: RawReplica) -> Result<Replica, Error> {
    let ecr = aws::ecr(
        &AwsFields {
            region: &raw.aws_region,
            access_key_id: &raw.aws_access_key_id,
            secret_access_key: &raw.aws_secret_access_key,
            session_token: &raw.aws_session_token,
            role_arn: &raw.aws_role_arn,
            role_arns: &raw.aws_role_arns,
            account_id: &raw.aws_account_id,
            ecr_registry_id: "",
            repository: &raw.repository,
        },
        &REPLICA_FIELDS,
    )?;
    let repository = repository(&raw.repository).map_err(|e| match e {
        Error::Missing(_) => Error::Invalid {
            field: "repository",
            value: String::new(),
            reason: "every replicate_to entry needs a repository".into(),
        },
        Error::Invalid { value, reason, .. } => Error::Invalid {
            field: "repository",
            value,
            reason,
        },
        e => e,
    })?;
    let (username, password) = basic_auth(raw.username, raw.password);
    Ok(Replica {
        repository,
        given: raw.repository,
        username,
        password,
        ca_certs: ca_certs(raw.ca_certs)?,
        insecure: raw.insecure,
        ecr,
    })
}
