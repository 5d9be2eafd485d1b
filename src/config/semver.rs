//! Semantic versions and constraints with the semantics of
//! Masterminds/semver v3, which registry-image uses for tags: loose versions
//! (`v` prefix allowed, missing minor/patch are 0) and constraints such as
//! `~1.2.x`, `^1.4`, `>= 1.2 < 3.0.0 || >= 4.2.3`. The `semver` crate follows
//! Cargo's rules instead (no `||`, different wildcard and prerelease rules),
//! so the small subset needed is implemented here.

use std::cmp::Ordering;

/// A parsed version; build metadata is kept for display but never compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// MAJOR
    pub major: u64,
    /// MINOR (0 when missing)
    pub minor: u64,
    /// PATCH (0 when missing)
    pub patch: u64,
    /// Prerelease text after `-`, empty when none.
    pub pre: String,
    /// Build metadata after `+`, empty when none.
    pub build: String,
}

fn valid_idents(s: &str) -> bool {
    s.split('.')
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// Prerelease identifiers also refuse numeric ones with a leading zero
/// (`01`), as Masterminds' `validatePrerelease` does.
fn valid_pre(s: &str) -> bool {
    valid_idents(s)
        && s.split('.')
            .all(|p| !(p.len() > 1 && p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit())))
}

impl Version {
    /// Parses `v?MAJOR[.MINOR[.PATCH]][-pre][+build]` (Masterminds `NewVersion`).
    ///
    /// The crate's one loose-semver parser: check's semver mode and put's
    /// `version`/`bump_aliases` (`put::tags`) both read tags with it. Only a
    /// lower-case `v` prefix is accepted, as Masterminds' regex (`v?`) does,
    /// so a `V1.2.3` tag is not a version for check and an invalid `version`
    /// for put, the same as in registry-image. No whitespace is trimmed.
    pub fn parse_loose(text: &str) -> Option<Version> {
        let s = text.strip_prefix('v').unwrap_or(text);
        let (s, build) = match s.split_once('+') {
            Some((a, b)) => (a, b),
            None => (s, ""),
        };
        let (core, pre) = match s.split_once('-') {
            Some((a, b)) => (a, b),
            None => (s, ""),
        };
        if (!pre.is_empty() || s.contains('-')) && !valid_pre(pre) {
            return None;
        }
        if (!build.is_empty() || text.contains('+')) && !valid_idents(build) {
            return None;
        }
        let mut parts = core.split('.');
        let num = |p: Option<&str>| -> Option<Option<u64>> {
            match p {
                None => Some(None),
                Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
                    p.parse().ok().map(Some)
                }
                Some(_) => None,
            }
        };
        let major = num(parts.next())??;
        let minor = num(parts.next())?.unwrap_or(0);
        let patch = num(parts.next())?.unwrap_or(0);
        if parts.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
            pre: pre.to_owned(),
            build: build.to_owned(),
        })
    }

    /// Whether this is a prerelease.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    fn triple(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }
}

/// The normalised form, `MAJOR.MINOR.PATCH[-pre][+build]` (no `v`), which
/// is the tag a put pushes for `version`.
impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

/// SemVer 2 precedence: numbers, then a release above any prerelease of it,
/// then prerelease identifiers left to right (numeric ones numerically and
/// below alphanumeric ones). Build metadata is ignored.
impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.triple().cmp(&other.triple()).then_with(|| {
            match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => cmp_pre(&self.pre, &other.pre),
            }
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
    Caret,
}

/// One `op version` term; `minor_dirty`/`patch_dirty` mark `x`/`*`/missing
/// parts (Masterminds' "dirty" flags).
#[derive(Debug, Clone)]
struct Term {
    op: Op,
    v: Version,
    any: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

/// A Masterminds/semver v3 constraint: `||`-separated groups of terms that
/// must all hold.
#[derive(Debug, Clone)]
pub struct Constraint {
    groups: Vec<Vec<Term>>,
    text: String,
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_x(p: &str) -> bool {
    matches!(p, "x" | "X" | "*")
}

fn parse_term(text: &str) -> Result<Term, String> {
    let ops: [(&str, Op); 12] = [
        (">=", Op::Ge),
        ("=>", Op::Ge),
        ("<=", Op::Le),
        ("=<", Op::Le),
        ("!=", Op::Ne),
        ("~>", Op::Tilde),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
        ("~", Op::Tilde),
        ("^", Op::Caret),
        ("", Op::Eq),
    ];
    let (op, rest) = ops
        .iter()
        .find_map(|(p, op)| text.strip_prefix(p).map(|rest| (*op, rest.trim())))
        .unwrap_or((Op::Eq, text));
    let bad = || format!("improper constraint: {text}");
    if rest.is_empty() {
        return Err(bad());
    }
    let bare = rest.strip_prefix('v').unwrap_or(rest);
    let core_end = bare.find(['-', '+']).unwrap_or(bare.len());
    let (core, suffix) = bare.split_at(core_end);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let any = is_x(parts[0]);
    let minor_dirty = any || parts.len() < 2 || is_x(parts[1]);
    let patch_dirty = minor_dirty || parts.len() < 3 || is_x(parts[2]);
    let concrete: Vec<&str> = parts
        .iter()
        .map(|p| if is_x(p) { "0" } else { p })
        .chain(std::iter::repeat("0"))
        .take(3)
        .collect();
    let v = Version::parse_loose(&format!("{}{suffix}", concrete.join("."))).ok_or_else(bad)?;
    Ok(Term {
        op,
        v,
        any,
        minor_dirty,
        patch_dirty,
    })
}

impl Constraint {
    /// Parses constraint text; the error is a lower-case reason.
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let mut groups = Vec::new();
        for group in text.split("||") {
            // Terms are separated by commas or spaces; an operator may be
            // followed by a space (`>= 1.2`), so glue a lone operator to the
            // next token.
            let mut terms = Vec::new();
            let mut pending = String::new();
            for tok in group.split([',', ' ']).filter(|t| !t.is_empty()) {
                if tok.chars().all(|c| "<>=!~^".contains(c)) {
                    pending.push_str(tok);
                    continue;
                }
                let term = format!("{pending}{tok}");
                pending.clear();
                terms.push(parse_term(&term)?);
            }
            if !pending.is_empty() || terms.is_empty() {
                return Err(format!("improper constraint: {text}"));
            }
            groups.push(terms);
        }
        Ok(Constraint {
            groups,
            text: text.to_owned(),
        })
    }

    /// Whether `v` satisfies the constraint. As in Masterminds v3, a
    /// prerelease version only matches a group that mentions a prerelease.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups.iter().any(|terms| {
            let include_pre = terms.iter().any(|t| t.v.is_prerelease());
            if v.is_prerelease() && !include_pre {
                return false;
            }
            terms.iter().all(|t| term_matches(t, v))
        })
    }
}

fn tilde(t: &Term, v: &Version) -> bool {
    if v < &t.v {
        return false;
    }
    if t.any || (t.v.triple() == (0, 0, 0) && !t.minor_dirty && !t.patch_dirty) {
        return true;
    }
    v.major == t.v.major && (t.minor_dirty || v.minor == t.v.minor)
}

fn term_matches(t: &Term, v: &Version) -> bool {
    let c = &t.v;
    match t.op {
        Op::Eq => {
            if t.minor_dirty || t.patch_dirty {
                tilde(t, v)
            } else {
                v.cmp(c) == Ordering::Equal
            }
        }
        Op::Ne => {
            if t.any {
                false
            } else if t.minor_dirty {
                v.major != c.major
            } else if t.patch_dirty {
                v.major != c.major || v.minor != c.minor
            } else {
                v.cmp(c) != Ordering::Equal
            }
        }
        Op::Gt => {
            if t.any {
                false
            } else if t.minor_dirty {
                v.major > c.major
            } else if t.patch_dirty {
                v.major > c.major || (v.major == c.major && v.minor > c.minor)
            } else {
                v > c
            }
        }
        Op::Ge => v >= c,
        Op::Lt => v < c,
        Op::Le => {
            if t.any {
                true
            } else if t.minor_dirty {
                v.major <= c.major
            } else if t.patch_dirty {
                v.major < c.major || (v.major == c.major && v.minor <= c.minor)
            } else {
                v <= c
            }
        }
        Op::Tilde => tilde(t, v),
        Op::Caret => {
            if t.any {
                return true;
            }
            if v < c {
                return false;
            }
            if c.major > 0 || t.minor_dirty {
                v.major == c.major
            } else if c.minor > 0 || t.patch_dirty {
                v.major == 0 && v.minor == c.minor
            } else {
                v.major == 0 && v.minor == 0 && v.patch == c.patch
            }
        }
    }
}

/// Semver-mode filters from `source` (see `Source::semver_options`), shared
/// by check's semver mode and the tag a put reports.
#[derive(Debug, Clone, Copy)]
pub struct SemverOptions<'a> {
    /// `variant`
    pub variant: Option<&'a str>,
    /// `semver_constraint`
    pub constraint: Option<&'a Constraint>,
    /// `pre_releases`
    pub pre_releases: bool,
    /// `pre_release_prefixes`
    pub pre_release_prefixes: &'a [String],
}

/// Parses `tag` as a semver candidate under `options`, or `None` to skip it.
pub fn candidate_version(tag: &str, options: &SemverOptions<'_>) -> Option<Version> {
    let text = match options.variant {
        Some(variant) => tag.strip_suffix(variant)?.strip_suffix('-')?,
        None => tag,
    };
    let version = Version::parse_loose(text)?;
    if let Some(c) = options.constraint
        && !c.matches(&version)
    {
        return None;
    }
    if version.is_prerelease() {
        if !options.pre_releases {
            return None;
        }
        // Without custom prefixes a `-` inside the prerelease marks another
        // variant (`1.0.0-rc.1-bar`), which is not ours.
        if options.pre_release_prefixes.is_empty() && version.pre.contains('-') {
            return None;
        }
        let known = ["alpha", "beta", "rc"]
            .into_iter()
            .chain(options.pre_release_prefixes.iter().map(String::as_str))
            .any(|p| version.pre.starts_with(p));
        if !known {
            return None;
        }
    }
    Some(version)
}

#[cfg(test)]
mod tests;
