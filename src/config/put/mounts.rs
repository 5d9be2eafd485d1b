//! `cache_mounts` (`true`, or a list of mount ids or targets) and
//! `cache_mounts_max_size` (bytes, or a number with `K`, `M`, `G` (powers
//! of 1024, `KiB`.. too)).

use serde_json::Value;

use super::access::Decoder;
use super::errors::{ParamsError, Result};
use super::{CacheMounts, DEFAULT_CACHE_MOUNTS_MAX_SIZE};

impl Decoder<'_> {
    pub(super) fn cache_mounts(&self) -> Result<Option<CacheMounts>> {
        let only = match self.map.get("cache_mounts") {
            None | Some(Value::Null) => None,
            Some(Value::Array(_)) => Some(self.list("cache_mounts")?),
            Some(_) => self.flag("cache_mounts")?.then(Vec::new),
        };
        let max = self
            .map
            .get("cache_mounts_max_size")
            .filter(|v| !v.is_null());
        let Some(only) = only else {
            if max.is_some() {
                return Err(ParamsError::Invalid {
                    param: "cache_mounts_max_size".into(),
                    problem: "it only applies with cache_mounts".into(),
                });
            }
            return Ok(None);
        };
        let max_size = match max {
            None => DEFAULT_CACHE_MOUNTS_MAX_SIZE,
            Some(v) => size(v).ok_or_else(|| ParamsError::Invalid {
                param: "cache_mounts_max_size".into(),
                problem: format!(
                    "{v} is not a size: bytes, or a number with K, M or G (1024-based), e.g. 2G"
                ),
            })?,
        };
        Ok(Some(CacheMounts { only, max_size }))
    }
}

/// Bytes from `123`, `"123"`, `"500M"`, `"2GiB"`.
fn size(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let text = v.as_str()?.trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = text[digits.len()..].to_ascii_uppercase();
    let n: u64 = digits.trim().parse().ok()?;
    let shift = match unit.as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::size;
    use serde_json::json;

    #[test]
    fn sizes() {
        assert_eq!(size(&json!(42)), Some(42));
        assert_eq!(size(&json!("2G")), Some(2 << 30));
        assert_eq!(size(&json!("500MiB")), Some(500 << 20));
        assert_eq!(size(&json!("12 k")), Some(12 << 10));
        assert_eq!(size(&json!("lots")), None);
        assert_eq!(size(&json!("3T")), None);
    }
}
