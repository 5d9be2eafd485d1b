//! Tag listing with `Link`-header pagination, as ggcr does it (oci-client
//! only takes `n`/`last`).

use reqwest::Method;
use reqwest::header::{self, HeaderMap};

use super::auth::resolve_url;
use super::client::Client;
use super::error::{Error, Result};

/// Most pages of one tag list; a registry that links on past this is
/// refused.
pub(super) const MAX_TAG_PAGES: usize = 10_000;
/// Most tags in one list, over all pages.
pub(super) const MAX_TAGS: usize = 250_000;
/// Most bytes of one list, over all pages (each page is also capped at
/// `MAX_TAG_PAGE_BYTES`).
pub(super) const MAX_TAG_LIST_BYTES: usize = 64 << 20;

impl Client {
    /// All tags, following `Link: <...>; rel="next"` pagination. A link back
    /// to a page already read ends the list (with a warning); a list longer
    /// than `MAX_TAG_PAGES` pages, `MAX_TAGS` tags or `MAX_TAG_LIST_BYTES`
    /// bytes is refused, so that a hostile or broken registry cannot keep a
    /// step running or growing.
    pub async fn list_tags(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let session = self.session().await?;
        let first = format!("{}?n={}", self.url(&session, "tags/list"), self.tag_page);
        let mut url = first.clone();
        let mut fetched = std::collections::HashSet::new();
        let mut tags = Vec::new();
        let mut bytes = 0usize;
        loop {
            fetched.insert(url.clone());
            let resp = self.send(Method::GET, &url, HeaderMap::new(), None).await?;
            if !resp.status().is_success() {
                return Err(Error::from_response(&Method::GET, &url, resp).await);
            }
            let next = resp
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body = super::client::read_limited(
                resp,
                &format!("GET {url}"),
                "tag list page",
                super::client::MAX_TAG_PAGE_BYTES,
            )
            .await?;
            let page: TagList = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                request: format!("GET {url}"),
                detail: format!("tag list is not valid JSON: {e}"),
            })?;
            bytes += body.len();
            tags.extend(page.tags.unwrap_or_default());
            let too_long = tags.len() > MAX_TAGS
                || bytes > MAX_TAG_LIST_BYTES
                || (next.is_some() && fetched.len() >= MAX_TAG_PAGES);
            if too_long {
                return Err(Error::Protocol {
                    request: format!("GET {first}"),
                    detail: format!(
                        "the tag list is too long: {} tags in {} pages ({bytes} bytes) so far, more than \
                         the {MAX_TAGS} tags, {MAX_TAG_PAGES} pages or {MAX_TAG_LIST_BYTES} bytes this \
                         resource reads; refusing it",
                        tags.len(),
                        fetched.len()
                    ),
                });
            }
            let Some(next) = next else {
                return Ok(tags);
            };
            url = resolve_url(&url, &next).ok_or_else(|| Error::Protocol {
                request: format!("GET {url}"),
                detail: format!("invalid Link header target {next:?}"),
            })?;
            if fetched.contains(&url) {
                tracing::warn!(
                    "the registry's tag list links back to a page already read ({url}); \
                     taking the {} tags read as the whole list",
                    tags.len()
                );
                return Ok(tags);
            }
        }
    }
}

/// The target of `rel="next"` in a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests;
