//! `skip_existing`: a put whose tags all already name one image pushes
//! nothing. The tags are the ones the put would write (`put::tags::plan`),
//! so a tag derived from the commit (`tag_file: repo/.git/ref`) skips the
//! rebuild of a commit already built. Only manifest HEADs are made; no
//! daemon is chosen or started before this answers.

use crate::registry;
use crate::store::push::{self, Pushed};

/// Why the put goes on, or the image every tag already names.
#[derive(Debug)]
pub enum Existing {
    /// Every tag names this image; nothing is to be pushed.
    All(Pushed),
    /// At least one tag is missing or names another digest: this says
    /// which, for the log.
    Build(String),
}

/// Looks every tag up; when all exist and name one digest, describes that
/// image (platforms, config, attestations) for the response.
pub async fn check(client: &registry::Client, tags: &[String]) -> super::Result<Existing> {
    let mut found: Option<(String, String)> = None;
    for tag in tags {
        let digest =
            registry::retry_transient(&format!("looking up tag {tag}"), || client.resolve_tag(tag))
                .await?;
        let Some(digest) = digest.map(|d| d.into_string()) else {
            return Ok(Existing::Build(format!("tag {tag} does not exist yet")));
        };
        match &found {
            Some((first_tag, first)) if *first != digest => {
                return Ok(Existing::Build(format!(
                    "tag {tag} names {digest} and tag {first_tag} names {first}"
                )));
            }
            Some(_) => {}
            None => found = Some((tag.clone(), digest)),
        }
    }
    let Some((_, digest)) = found else {
        return Ok(Existing::Build("the put writes no tag".into()));
    };
    let pushed = push::describe_pushed(client, &digest, &[]).await?;
    Ok(Existing::All(pushed))
}
