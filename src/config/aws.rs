//! The `aws_*` fields (ECR authentication), validated the same way for
//! `source` and for each `replicate_to` entry; only the field names in the
//! errors differ ([`FieldNames`]).

use super::fields::non_empty;
use super::{Ecr, Error, Secret};

/// The `aws_*` fields as written, and the repository they log in for.
pub(super) struct AwsFields<'a> {
    pub region: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a Secret,
    pub session_token: &'a Secret,
    pub role_arn: &'a str,
    pub role_arns: &'a [String],
    pub account_id: &'a str,
    pub ecr_registry_id: &'a str,
    pub repository: &'a str,
}

/// How errors name each field.
pub(super) struct FieldNames {
    region: &'static str,
    access_key_id: &'static str,
    secret_access_key: &'static str,
    session_token: &'static str,
    role_arn: &'static str,
    role_arns: &'static str,
    account_id: &'static str,
}

/// `source.aws_*`.
pub(super) const SOURCE_FIELDS: FieldNames = FieldNames {
    region: "source.aws_region",
    access_key_id: "source.aws_access_key_id",
    secret_access_key: "source.aws_secret_access_key",
    session_token: "source.aws_session_token",
    role_arn: "source.aws_role_arn",
    role_arns: "source.aws_role_arns",
    account_id: "source.aws_account_id",
};

/// A `replicate_to` entry's own (its error names the entry).
pub(super) const REPLICA_FIELDS: FieldNames = FieldNames {
    region: "aws_region",
    access_key_id: "aws_access_key_id",
    secret_access_key: "aws_secret_access_key",
    session_token: "aws_session_token",
    role_arn: "aws_role_arn",
    role_arns: "aws_role_arns",
    account_id: "aws_account_id",
};

/// The `aws_*` fields, validated; `None` without `aws_region`. Other `aws_*`
/// fields without a region are an error: registry-image ignores them, which
/// silently pulls anonymously. Without keys the credentials come from the
/// standard chain when the token is fetched (`crate::ecr`).
pub(super) fn ecr(raw: &AwsFields<'_>, names: &FieldNames) -> Result<Option<Ecr>, Error> {
    let invalid = |field, reason: &str| Error::Invalid {
        field,
        value: String::new(),
        reason: reason.to_owned(),
    };
    if raw.region.is_empty() {
        let set = [
            (names.access_key_id, !raw.access_key_id.is_empty()),
            (names.secret_access_key, !raw.secret_access_key.is_empty()),
            (names.session_token, !raw.session_token.is_empty()),
            (names.role_arn, !raw.role_arn.is_empty()),
            (names.role_arns, !raw.role_arns.is_empty()),
            (names.account_id, !raw.account_id.is_empty()),
        ];
        return match set.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(invalid(
                field,
                "ECR authentication is turned on by aws_region: set it too",
            )),
            None => Ok(None),
        };
    }
    if !raw.role_arn.is_empty() && !raw.role_arns.is_empty() {
        return Err(invalid(
            names.role_arn,
            "give either aws_role_arn or aws_role_arns, not both",
        ));
    }
    if raw.access_key_id.is_empty() != raw.secret_access_key.is_empty() {
        return Err(invalid(
            names.access_key_id,
            "aws_access_key_id and aws_secret_access_key go together: set both or neither",
        ));
    }
    let region_ok = raw
        .region
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        return Err(Error::Invalid {
            field: names.region,
            value: raw.region.to_owned(),
            reason: "a region is lower-case letters, digits and '-', e.g. eu-west-1".into(),
        });
    }
    if !raw.account_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Invalid {
            field: names.account_id,
            value: raw.account_id.to_owned(),
            reason: "an AWS account id is 12 digits".into(),
        });
    }
    let mut role_arns: Vec<String> = raw
        .role_arns
        .iter()
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    if !raw.role_arn.is_empty() {
        role_arns.push(raw.role_arn.to_owned());
    }
    if let Some(bad) = role_arns.iter().find(|a| !a.starts_with("arn:")) {
        return Err(Error::Invalid {
            field: names.role_arns,
            value: bad.clone(),
            reason: "a role ARN looks like arn:aws:iam::123456789012:role/name".into(),
        });
    }
    Ok(Some(Ecr {
        region: raw.region.to_owned(),
        access_key_id: non_empty(raw.access_key_id.to_owned()),
        secret_access_key: (!raw.secret_access_key.is_empty())
            .then(|| raw.secret_access_key.clone()),
        session_token: (!raw.session_token.is_empty()).then(|| raw.session_token.clone()),
        role_arns,
        account_id: non_empty(raw.account_id.to_owned()),
        deprecated_registry_id: !raw.ecr_registry_id.is_empty(),
        repository_name: (!names_registry_host(raw.repository)).then(|| raw.repository.to_owned()),
    }))
}

/// Whether a repository text starts with a registry host, by the rule
/// [`super::Repository::parse`] applies (first component with `.` or `:`,
/// or `localhost`).
fn names_registry_host(text: &str) -> bool {
    match text.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}
