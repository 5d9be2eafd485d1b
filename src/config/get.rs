//! `params` of `get` (the `in` binary): output format, `skip_download` and
//! the platform to pick from an index.

use serde::Deserialize;
use serde_json::Value;

use super::decode::{self, Shape};
use super::source::RawPlatform;
use super::{Error, Platform};

/// Every key `get` params accept (canonical spelling).
pub const SHAPE: Shape = Shape::Object(&[
    ("format", Shape::Leaf),
    ("skip_download", Shape::Leaf),
    (
        "platform",
        Shape::Object(&[
            ("os", Shape::Leaf),
            ("architecture", Shape::Leaf),
            ("variant", Shape::Leaf),
        ]),
    ),
]);

/// What `get` writes into the destination directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// `rootfs`: unpacked filesystem + metadata.json (the default).
    #[default]
    Rootfs,
    /// `oci`: docker-save style `image.tar`.
    Oci,
    /// `oci-layout`: an OCI image layout directory `oci/`.
    OciLayout,
}

impl Format {
    /// Parses the `format` param; empty means the default.
    pub fn parse(text: &str) -> Result<Format, Error> {
        match text {
            "" | "rootfs" => Ok(Format::Rootfs),
            "oci" => Ok(Format::Oci),
            "oci-layout" => Ok(Format::OciLayout),
            other => Err(Error::Invalid {
                field: "params.format",
                value: other.to_owned(),
                reason: "unknown format provided, must be one of 'rootfs', 'oci', 'oci-layout'"
                    .into(),
            }),
        }
    }
}

/// The validated `params` of get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetParams {
    /// `format`.
    pub format: Format,
    /// `skip_download`: write only tag/digest/repository (and metadata).
    pub skip_download: bool,
    /// `platform`: replaces `source.platform` entirely when given.
    pub platform: Option<Platform>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGetParams {
    #[serde(default)]
    format: String,
    #[serde(default)]
    skip_download: bool,
    platform: Option<RawPlatform>,
}

impl GetParams {
    /// Decodes `params` (absent or `null` → defaults).
    pub fn from_value(value: Option<Value>) -> Result<GetParams, Error> {
        let Some(value) = value else {
            return Ok(GetParams::default());
        };
        let value = decode::canonicalize(value, &SHAPE, "params")?;
        let raw: RawGetParams = decode::from_value(value, "params")?;
        Ok(GetParams {
            format: Format::parse(&raw.format)?,
            skip_download: raw.skip_download,
            platform: raw.platform.map(Platform::from),
        })
    }
}

#[cfg(test)]
mod tests;
