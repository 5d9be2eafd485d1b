//! The `aws_*` fields of `source`: ECR authentication, validated.

use super::{Ecr, Error, RawSource, non_empty};

/// The `aws_*` fields, validated; `None` without `aws_region`. Other `aws_*`
/// fields without a region are an error: registry-image ignores them, which
/// silently pulls anonymously.
pub(super) fn ecr(raw: &RawSource) -> Result<Option<Ecr>, Error> {
    let invalid = |field, reason: &str| Error::Invalid {
        field,
        value: String::new(),
        reason: reason.to_owned(),
    };
    if raw.aws_region.is_empty() {
        let set = [
            (
                "source.aws_access_key_id",
                !raw.aws_access_key_id.is_empty(),
            ),
            (
                "source.aws_secret_access_key",
                !raw.aws_secret_access_key.is_empty(),
            ),
            (
                "source.aws_session_token",
                !raw.aws_session_token.is_empty(),
            ),
            ("source.aws_role_arn", !raw.aws_role_arn.is_empty()),
            ("source.aws_role_arns", !raw.aws_role_arns.is_empty()),
            ("source.aws_account_id", !raw.aws_account_id.is_empty()),
        ];
        return match set.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(invalid(
                field,
                "ECR authentication is turned on by source.aws_region: set it too",
            )),
            None => Ok(None),
        };
    }
    if !raw.aws_role_arn.is_empty() && !raw.aws_role_arns.is_empty() {
        return Err(invalid(
            "source.aws_role_arn",
            "give either aws_role_arn or aws_role_arns, not both",
        ));
    }
    if raw.aws_access_key_id.is_empty() != raw.aws_secret_access_key.is_empty() {
        return Err(invalid(
            "source.aws_access_key_id",
            "aws_access_key_id and aws_secret_access_key go together: set both or neither",
        ));
    }
    let region_ok = raw
        .aws_region
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        return Err(Error::Invalid {
            field: "source.aws_region",
            value: raw.aws_region.clone(),
            reason: "a region is lower-case letters, digits and '-', e.g. eu-west-1".into(),
        });
    }
    if !raw.aws_account_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Invalid {
            field: "source.aws_account_id",
            value: raw.aws_account_id.clone(),
            reason: "an AWS account id is 12 digits".into(),
        });
    }
    let mut role_arns: Vec<String> = raw
        .aws_role_arns
        .iter()
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    if !raw.aws_role_arn.is_empty() {
        role_arns.push(raw.aws_role_arn.clone());
    }
    if let Some(bad) = role_arns.iter().find(|a| !a.starts_with("arn:")) {
        return Err(Error::Invalid {
            field: "source.aws_role_arns",
            value: bad.clone(),
            reason: "a role ARN looks like arn:aws:iam::123456789012:role/name".into(),
        });
    }
    Ok(Some(Ecr {
        region: raw.aws_region.clone(),
        access_key_id: non_empty(raw.aws_access_key_id.clone()),
        secret_access_key: (!raw.aws_secret_access_key.is_empty())
            .then(|| raw.aws_secret_access_key.clone()),
        session_token: (!raw.aws_session_token.is_empty()).then(|| raw.aws_session_token.clone()),
        role_arns,
        account_id: non_empty(raw.aws_account_id.clone()),
        deprecated_registry_id: !raw.aws_ecr_registry_id.is_empty(),
        repository_name: (!names_registry_host(&raw.repository)).then(|| raw.repository.clone()),
    }))
}

/// Whether a repository text starts with a registry host, by the rule
/// [`Repository::parse`] applies (first component with `.` or `:`, or
/// `localhost`).
fn names_registry_host(text: &str) -> bool {
    match text.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}
