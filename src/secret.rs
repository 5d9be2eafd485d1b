//! [`Secret`]: a redacted string for passwords and keys, shared by the
//! request config and the registry client. It sits below both so that
//! `registry` need not import `config`.

/// A secret value (password, key). Its `Debug` never shows the value, so it
/// cannot leak through `{:?}` in logs or errors.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string (Go's zero value, "unset").
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
