//! Choosing a platform's child of an image index, as ggcr's
//! `remote.Image(..., WithPlatform)` does for registry-image: the first entry
//! whose `os` and `architecture` equal the wanted ones; entries without a
//! platform count as linux/amd64; the variant is compared only when one is
//! wanted, and `arm64` ≡ `arm64/v8` (the README's suggested spelling, which
//! registry-image itself never matches: we accept both).

use oci_spec::image::{Descriptor, ImageIndex};

use crate::config::Platform;

/// A fully resolved platform (no unset parts except the variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// e.g. `linux`
    pub os: String,
    /// e.g. `amd64`
    pub architecture: String,
    /// e.g. `v7`
    pub variant: Option<String>,
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// This binary's own architecture in GOARCH spelling.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// Fills unset parts of `platform` with this binary's own os/architecture
/// (registry-image uses GOOS/GOARCH).
pub fn wanted(platform: Option<&Platform>) -> Wanted {
    let p = platform.cloned().unwrap_or_default();
    Wanted {
        os: p.os.unwrap_or_else(|| std::env::consts::OS.to_owned()),
        architecture: p
            .architecture
            .unwrap_or_else(|| host_architecture().to_owned()),
        variant: p.variant,
    }
}

fn normalise_variant(arch: &str, variant: Option<&str>) -> Option<String> {
    match (arch, variant) {
        ("arm64", Some("v8")) | (_, None) | (_, Some("")) => None,
        (_, Some(v)) => Some(v.to_owned()),
    }
}

/// Whether a descriptor platform (`None` = linux/amd64) satisfies `wanted`.
pub fn platform_matches(platform: Option<&oci_spec::image::Platform>, wanted: &Wanted) -> bool {
    let (os, arch, variant) = match platform {
        Some(p) => (
            p.os().to_string(),
            p.architecture().to_string(),
            p.variant().clone(),
        ),
        None => ("linux".to_owned(), "amd64".to_owned(), None),
    };
    if os != wanted.os || arch != wanted.architecture {
        return false;
    }
    match normalise_variant(&wanted.architecture, wanted.variant.as_deref()) {
        None => true,
        Some(v) => normalise_variant(&arch, variant.as_deref()).as_deref() == Some(v.as_str()),
    }
}

/// The first child of `index` for `wanted`, if any (nested indexes are
/// returned as they are; the caller resolves them recursively).
pub fn select_platform(index: &ImageIndex, wanted: &Wanted) -> Option<Descriptor> {
    index
        .manifests()
        .iter()
        .find(|d| platform_matches(d.platform().as_ref(), wanted))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ImageIndex {
        serde_json::from_str(
            r#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","platform":{"os":"linux","architecture":"arm","variant":"v7"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333"}]}"#,
        )
        .unwrap()
    }

    fn pick(os: &str, arch: &str, variant: Option<&str>) -> Option<char> {
        let w = Wanted {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        };
        select_platform(&index(), &w).map(|d| d.digest().to_string().chars().nth(7).unwrap())
    }

    #[test]
    fn selection_rules() {
        assert_eq!(pick("linux", "arm64", None), Some('2'));
        assert_eq!(pick("linux", "arm64", Some("v8")), Some('2'));
        assert_eq!(pick("linux", "arm", Some("v7")), Some('1'));
        assert_eq!(pick("linux", "arm", Some("v6")), None);
        assert_eq!(pick("linux", "amd64", None), Some('3'));
        assert_eq!(pick("windows", "amd64", None), None);
    }

    #[test]
    fn defaults_fill_from_host() {
        let w = wanted(Some(&Platform {
            architecture: Some("arm64".into()),
            ..Default::default()
        }));
        assert_eq!(w.os, std::env::consts::OS);
        assert_eq!(w.architecture, "arm64");
    }
}
