//! The tag grammar of the OCI distribution spec, one copy for the crate:
//! `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. `source.tag` (`config::source`),
//! `cache_tag` (`config::put`) and every tag a put computes
//! (`put::tags`) are checked against it, each with its own message.

/// The longest tag the spec allows, in bytes (the grammar is ASCII-only).
pub const MAX_LEN: usize = 128;

/// Whether `tag` matches `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid(tag: &str) -> bool {
    let mut chars = tag.chars();
    tag.len() <= MAX_LEN
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests;
