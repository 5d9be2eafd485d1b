//! Platform matching: which child of an index `get` uses.
//!
//! registry-image compares `os` and `architecture` verbatim and treats an
//! entry without a platform as linux/amd64. We do the same, and also accept
//! a variant (`arm64/v8`, or a separate `variant`), with `arm64` and
//! `arm64/v8` equivalent because that is what `arm64` means everywhere else
//! (registry-image#36 and registry-image#313: users wrote `arm64/v8` and
//! matched nothing).

use std::fmt;

use oci_spec::image::{Descriptor, ImageIndex, Platform};

/// The platform the user wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedPlatform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// GOARCH naming: `amd64`, `arm64`, `arm`, ...
    pub architecture: String,
    /// `v8`, `v7`, ...; `None` accepts any variant.
    pub variant: Option<String>,
}

/// GOOS of the running binary.
pub fn host_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// GOARCH of the running binary.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

impl WantedPlatform {
    /// Builds the wanted platform from optional `os` / `architecture` /
    /// `variant`, defaulting each missing field to the host (registry-image
    /// does the same per field). `architecture` may carry the variant
    /// (`arm64/v8`).
    pub fn new(os: Option<&str>, architecture: Option<&str>, variant: Option<&str>) -> Self {
        let os = os.filter(|s| !s.is_empty()).unwrap_or(host_os()).to_owned();
        let arch = architecture
            .filter(|s| !s.is_empty())
            .unwrap_or(host_arch());
        let (arch, inline_variant) = match arch.split_once('/') {
            Some((a, v)) => (a, Some(v)),
            None => (arch, None),
        };
        let variant = variant
            .filter(|s| !s.is_empty())
            .or(inline_variant)
            .map(str::to_owned);
        WantedPlatform {
            os,
            architecture: arch.to_owned(),
            variant,
        }
    }

    /// The host platform.
    pub fn host() -> Self {
        Self::new(None, None, None)
    }

    /// Whether an index entry's platform (`None` = linux/amd64) matches.
    pub fn matches(&self, platform: Option<&Platform>) -> bool {
        let (os, arch, variant) = match platform {
            Some(p) => (
                p.os().to_string(),
                p.architecture().to_string(),
                p.variant().clone(),
            ),
            None => ("linux".to_owned(), "amd64".to_owned(), None),
        };
        if os != self.os || arch != self.architecture {
            return false;
        }
        let Some(wanted) = &self.variant else {
            return true;
        };
        normalise_variant(&arch, variant.as_deref()) == normalise_variant(&arch, Some(wanted))
    }

    /// Index entries to try, in index order: matching image manifests and
    /// nested indexes (which the caller resolves recursively; a nested index
    /// without a platform is searched too, since it says nothing about its
    /// children). Never an attestation: BuildKit's provenance and SBOM
    /// entries say `unknown/unknown`, which `os: unknown` would match.
    pub fn candidates<'a>(
        &'a self,
        index: &'a ImageIndex,
    ) -> impl Iterator<Item = &'a Descriptor> + 'a {
        index.manifests().iter().filter(move |d| {
            if is_attestation(d) {
                return false;
            }
            let nested = super::manifest::is_index_type(d.media_type().as_ref());
            if nested && d.platform().is_none() {
                return true;
            }
            self.matches(d.platform().as_ref())
        })
    }
}

/// Whether an index entry is an attestation manifest, not an image.
fn is_attestation(d: &Descriptor) -> bool {
    let annotations = d
        .annotations()
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let os = d.platform().as_ref().map(|p| p.os().to_string());
    let arch = d.platform().as_ref().map(|p| p.architecture().to_string());
    let os_arch = os.as_deref().zip(arch.as_deref());
    crate::oci::attestation::is_attestation_entry(annotations, os_arch)
}

fn normalise_variant<'a>(arch: &str, variant: Option<&'a str>) -> Option<&'a str> {
    match (arch, variant) {
        ("arm64", None) => Some("v8"),
        (_, v) => v,
    }
}

impl fmt::Display for WantedPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
