use super::*;
use serde_json::json;

/// A secret of the wrong JSON type is reported by its field, never by
/// its value.
#[test]
fn secret_of_wrong_type_is_named_not_echoed() {
    let cases = [
        (
            json!({"repository": "r", "password": 987654321}),
            "source.password",
        ),
        (
            json!({"repository": "r", "registry_mirror": {"host": "m", "password": 987654321}}),
            "source.registry_mirror.password",
        ),
        (
            json!({"repository": "r", "additional_registries": [{"host": "m", "password": 987654321}]}),
            "source.additional_registries[0].password",
        ),
        (
            json!({"repository": "r", "buildkit_tls": {"key": 987654321}}),
            "source.buildkit_tls.key",
        ),
        (
            json!({"repository": "r", "aws_secret_access_key": [987654321]}),
            "source.aws_secret_access_key",
        ),
        (
            json!({"repository": "r", "Password": {"x": 987654321}}),
            "source.password",
        ),
    ];
    for (value, field) in cases {
        let err = Source::from_value(value).unwrap_err().to_string();
        assert!(!err.contains("987654321"), "value echoed: {err}");
        assert!(err.contains(field), "field {field} not named: {err}");
    }
}
