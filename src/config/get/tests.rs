use super::*;
use serde_json::json;

#[test]
fn params_decode() {
    assert_eq!(GetParams::from_value(None).unwrap(), GetParams::default());
    let p = GetParams::from_value(Some(json!({"Format": "oci-layout", "skip_download": null,
            "platform": {"Architecture": "arm64"}})))
    .unwrap();
    assert_eq!(p.format, Format::OciLayout);
    assert_eq!(p.platform.unwrap().architecture.as_deref(), Some("arm64"));
    assert_eq!(
        GetParams::from_value(Some(json!({"format": ""})))
            .unwrap()
            .format,
        Format::Rootfs
    );
    let err = GetParams::from_value(Some(json!({"format": "tar"})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown format provided"), "{err}");
    let err = GetParams::from_value(Some(json!({"skip_downlaod": true})))
        .unwrap_err()
        .to_string();
    assert!(err.contains(r#"did you mean "skip_download""#), "{err}");
}
