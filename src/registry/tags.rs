//! Tag listing with `Link`-header pagination, as ggcr does it (oci-client
//! only takes `n`/`last`).

use reqwest::Method;
use reqwest::header::{self, HeaderMap};

use super::auth::resolve_url;
use super::client::Client;
use super::error::{Error, Result};

impl Client {
    /// All tags, following `Link: <...>; rel="next"` pagination.
    pub async fn list_tags(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let session = self.session().await?;
        let mut url = format!("{}?n={}", self.url(&session, "tags/list"), self.tag_page);
        let mut tags = Vec::new();
        loop {
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
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(next) => {
                    url = resolve_url(&url, &next).ok_or_else(|| Error::Protocol {
                        request: format!("GET {url}"),
                        detail: format!("invalid Link header target {next:?}"),
                    })?
                }
                None => return Ok(tags),
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
