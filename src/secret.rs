//! [`Secret`]: a redacted string for passwords and keys, shared by the
//! request config and the registry client. It sits below both so that
//! `registry` need not import `config`.

/// A secret value (password, key). Its `Debug` never shows the value, so it
/// cannot leak through `{:?}` in logs or errors.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

/// Only a string is accepted; any other type is refused with its JSON type
/// but not its value (serde's own message would quote a numeric password).
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string (a secret; its value is not shown)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string, not a boolean"))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string, not a number"))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string, not a number"))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(E::custom("a secret must be a string, not a number"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(serde::de::Error::custom(
                    "a secret must be a string, not a list",
                ))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(serde::de::Error::custom(
                    "a secret must be a string, not an object",
                ))
            }
        }
        // `deserialize_any`: `deserialize_string` would let serde_json build
        // its own "invalid type: integer `N`" message before we see the value.
        d.deserialize_any(Visit)
    }
}

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

#[cfg(test)]
mod tests {
    use super::Secret;

    /// issue 10 item 4: the second guard, for callers that skip
    /// `config::decode`'s shape check.
    #[test]
    fn wrong_type_error_does_not_echo_the_value() {
        for text in [
            "987654321",
            "-987654321",
            "987654321.5",
            "[987654321]",
            r#"{"987654321": 1}"#,
            "true",
        ] {
            let err = serde_json::from_str::<Secret>(text)
                .unwrap_err()
                .to_string();
            assert!(!err.contains("987654321"), "{err}");
            assert!(err.contains("secret must be a string"), "{err}");
        }
        let s: Secret = serde_json::from_str(r#""pw""#).unwrap();
        assert_eq!(s.expose(), "pw");
    }
}
