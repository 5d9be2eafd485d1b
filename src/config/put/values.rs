//! Value parsers that more than one put param shares: image references
//! (`layers.base`, the SBOM scanner) and platforms (`platform`,
//! `layers[].platform`).

use super::errors::{ParamsError, Result};

/// `host/repo[:tag|@digest]` → (repository, tag or digest), the tag
/// `latest` when neither is given.
pub(super) fn image_reference(param: &str, text: &str) -> Result<(String, String)> {
    let invalid = |problem: String| ParamsError::Invalid {
        param: param.into(),
        problem,
    };
    let (repository, reference) = match text.split_once('@') {
        Some((repo, digest)) => {
            if !crate::oci::Digest::is_valid(digest) {
                return Err(invalid(format!(
                    "{text:?}: {digest:?} is not a sha256 digest"
                )));
            }
            // A tag before the digest is ignored, as docker does.
            let repo = match repo.rfind(':') {
                Some(i) if !repo[i..].contains('/') => &repo[..i],
                _ => repo,
            };
            (repo.to_string(), digest.to_string())
        }
        None => match text.rfind(':') {
            Some(i) if !text[i..].contains('/') => {
                let tag = &text[i + 1..];
                if !crate::config::tag::is_valid(tag) {
                    return Err(invalid(format!("{text:?}: {tag:?} is not a valid tag")));
                }
                (text[..i].to_string(), tag.to_string())
            }
            _ => (text.to_string(), "latest".to_string()),
        },
    };
    crate::registry::Repository::parse(&repository)
        .map_err(|e| invalid(format!("{text:?}: {e}")))?;
    Ok((repository, reference))
}

/// `os/arch[/variant]`, each part alphanumeric or `_`.
pub(super) fn validate_platform(param: &str, p: &str) -> Result<()> {
    let parts: Vec<&str> = p.split('/').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if ok {
        Ok(())
    } else {
        Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!("{p:?} is not os/arch[/variant]"),
        })
    }
}
