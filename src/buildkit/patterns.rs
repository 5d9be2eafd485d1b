//! Path patterns with the semantics of `moby/patternmatcher`, the matcher
//! behind `.dockerignore` and BuildKit's include/exclude patterns for local
//! directories (fsutil `FilterFS`).
//!
//! globset is not used on purpose: patternmatcher has its own rules that a
//! generic glob engine does not reproduce — a pattern also matches every path
//! *below* a matching directory, `**` may match zero directories (`a/**/b`
//! matches `a/b`), `**/x` matches `x` at the root, a trailing `**` is a plain
//! prefix test (`a**` matches `abc/d`), `!` re-includes, the last matching
//! pattern wins, and patterns are cleaned like Go's `filepath.Clean` first.
//! Matching runs on `/`-separated paths relative to the directory root.

use regex::Regex;

/// A pattern that failed to parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

#[derive(Debug, Clone)]
enum Kind {
    /// The whole path equals the pattern.
    Exact,
    /// The pattern ends in `**` and has no other wildcard: prefix test.
    Prefix(String),
    /// The pattern starts with `**` and has no other wildcard: suffix test.
    Suffix(String),
    Regex(Regex),
}

/// One cleaned pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
}

impl Pattern {
    /// The cleaned pattern text, without a leading `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is a `!` (re-include) pattern.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    // `**/foo` also matches `foo` itself.
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }

    /// The pattern without a trailing `/**` or `/*` (fsutil uses this to
    /// decide whether a directory can contain a match).
    fn without_trailing_glob(&self) -> &str {
        let p = self.cleaned.as_str();
        let p = p.strip_suffix("/**").unwrap_or(p);
        p.strip_suffix("/*").unwrap_or(p)
    }
}

/// An ordered list of patterns; the last matching one decides.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

/// Per-pattern results for a directory, passed down to its children so that
/// each pattern is tested once per path component (patternmatcher's
/// `MatchInfo`). `None` means "no information" (the root's children).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo(Option<Vec<bool>>);

impl PatternMatcher {
    /// Parses patterns; blank ones are skipped, the rest cleaned.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<PatternMatcher, PatternError> {
        let mut out = PatternMatcher::default();
        for raw in patterns {
            let raw = raw.as_ref();
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let mut p = clean_path(trimmed);
            let exclusion = p.starts_with('!');
            if exclusion {
                if p.len() == 1 {
                    return Err(PatternError {
                        pattern: raw.to_owned(),
                        reason: "illegal exclusion pattern \"!\"".into(),
                    });
                }
                p.remove(0);
                out.exclusions = true;
            }
            let kind = compile(&p).map_err(|reason| PatternError {
                pattern: raw.to_owned(),
                reason,
            })?;
            out.patterns.push(Pattern {
                cleaned: p,
                exclusion,
                kind,
            });
        }
        Ok(out)
    }

    /// The parsed patterns in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether `path` or one of its parent directories matches
    /// (`MatchesOrParentMatches`).
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        self.matches_using_parent(path, &MatchInfo::default()).0
    }

    /// `MatchesUsingParentResults`: like [`Self::matches_or_parent_matches`],
    /// reusing the parent directory's per-pattern results.
    pub fn matches_using_parent(&self, path: &str, parent: &MatchInfo) -> (bool, MatchInfo) {
        let mut matched = false;
        let mut info = vec![false; self.patterns.len()];
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent
                .0
                .as_ref()
                .and_then(|p| p.get(i).copied())
                .unwrap_or(false);
            if !hit {
                // An inclusion cannot change an already matched path, an
                // exclusion cannot change an unmatched one: skip the test.
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(path);
                if !hit && parent.0.is_none() {
                    // No parent results: test every parent directory.
                    let mut end = 0;
                    while let Some(pos) = path[end..].find('/') {
                        end += pos;
                        if pattern.matches(&path[..end]) {
                            hit = true;
                            break;
                        }
                        end += 1;
                    }
                }
            }
            info[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        (matched, MatchInfo(Some(info)))
    }

    /// Whether the directory `dir` may contain a path matched by a pattern
    /// of the given polarity, judged on literal prefixes. Only meaningful when
    /// [`Self::only_literal`] holds for that polarity (fsutil's walk pruning).
    pub(crate) fn literal_prefix_below(&self, dir: &str, exclusion: bool) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exclusion == exclusion)
            .any(|p| format!("{}/", p.without_trailing_glob()).starts_with(&dir_slash))
    }

    /// Whether all patterns of the given polarity are literal paths once a
    /// trailing `/*` or `/**` is removed (then pruning by prefix is exact).
    pub(crate) fn only_literal(&self, exclusion: bool) -> bool {
        self.patterns
            .iter()
            .filter(|p| p.exclusion == exclusion)
            .all(|p| {
                !p.without_trailing_glob()
                    .contains(['*', '[', ']', '?', '^', '\\'])
            })
    }
}

/// Go's `filepath.Clean` on a `/`-separated path.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Translates a cleaned pattern the way patternmatcher's `compile` does.
fn compile(pattern: &str) -> Result<Kind, String> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is the same as `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                detected = Detected::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => {
                if let Some(&next) = chars.get(i) {
                    i += 1;
                    re.push('\\');
                    re.push(next);
                    detected = Detected::Regex;
                } else {
                    re.push_str("\\\\");
                }
            }
            '[' | ']' => {
                re.push(ch);
                detected = Detected::Regex;
            }
            other => re.push(other),
        }
        first = false;
    }
    // Go's filepath.Match rejects malformed classes even for literal-looking
    // patterns; an unbalanced bracket is the common case.
    let kind = match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_owned()),
        Detected::Suffix => Kind::Suffix(pattern[2..].to_owned()),
        Detected::Regex => {
            re.push('$');
            Kind::Regex(Regex::new(&re).map_err(|e| format!("bad pattern syntax ({e})"))?)
        }
    };
    Ok(kind)
}

#[cfg(test)]
mod tests;
