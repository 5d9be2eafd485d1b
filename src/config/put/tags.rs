//! The tag inputs of a put: `tag_file` (docker-image's `tag`) with
//! `tag_prefix`, `additional_tags`, `tag_as_latest`, `version` and
//! `bump_aliases`. The tags themselves are computed from these by
//! `put::tags`, which checks them with [`validate_tag`].

use super::TagParams;
use super::access::Decoder;
use super::errors::{ParamsError, Result};
use super::params;

impl Decoder<'_> {
    pub(super) fn tags(&mut self) -> Result<TagParams> {
        let prefix = self.text("tag_prefix")?.unwrap_or_default();
        let tag_file = match self.first_text(&params::TAG_FILE)? {
            Some((param, file)) => {
                let (path, text) = self.read(&param, &file)?;
                let tag = text.trim();
                if tag.is_empty() {
                    return Err(ParamsError::Invalid {
                        param,
                        problem: format!("{} is empty", path.display()),
                    });
                }
                let tag = format!("{prefix}{tag}");
                file_tag(&param, &path, &tag)?;
                Some(tag)
            }
            None => None,
        };
        let additional_tags = match self.text("additional_tags")? {
            Some(file) => {
                let (path, text) = self.read("additional_tags", &file)?;
                let tags: Vec<String> = text
                    .split_whitespace()
                    .map(|t| format!("{prefix}{t}"))
                    .collect();
                for tag in &tags {
                    file_tag("additional_tags", &path, tag)?;
                }
                tags
            }
            None => Vec::new(),
        };
        if !prefix.is_empty() && tag_file.is_none() && !self.is_set("additional_tags") {
            return Err(ParamsError::Invalid {
                param: "tag_prefix".into(),
                problem: "it only applies to tags from `tag_file` or `additional_tags`, and neither is set"
                    .into(),
            });
        }
        let version = self.text("version")?;
        let bump_aliases = self.flag("bump_aliases")?;
        if bump_aliases && version.is_none() {
            return Err(ParamsError::Invalid {
                param: "bump_aliases".into(),
                problem: "it needs `version`".into(),
            });
        }
        Ok(TagParams {
            tag_file,
            additional_tags,
            tag_as_latest: self.flag("tag_as_latest")?,
            version,
            bump_aliases,
        })
    }
}

/// Checks a tag read from a file, quoting only a short excerpt of it when
/// it is not valid (the file may not be a tag file at all).
fn file_tag(param: &str, path: &std::path::Path, tag: &str) -> Result<()> {
    if crate::config::tag::is_valid(tag) {
        return Ok(());
    }
    Err(ParamsError::Invalid {
        param: param.into(),
        problem: format!(
            "{} does not hold a valid tag (letters, digits, `_`, `.`, `-`; at most 128); it starts with {}",
            path.display(),
            super::files::excerpt(tag)
        ),
    })
}

/// Checks a tag against the distribution spec (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub fn validate_tag(param: &str, tag: &str) -> Result<()> {
    if crate::config::tag::is_valid(tag) {
        Ok(())
    } else {
        Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!(
                "{tag:?} is not a valid tag (letters, digits, `_`, `.`, `-`; at most 128)"
            ),
        })
    }
}
