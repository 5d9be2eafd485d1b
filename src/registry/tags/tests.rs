use super::*;

#[test]
fn link_header() {
    assert_eq!(
        next_link(r#"</v2/r/tags/list?last=b&n=2>; rel="next""#).as_deref(),
        Some("/v2/r/tags/list?last=b&n=2")
    );
    assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    assert_eq!(
        resolve_url(
            "http://h:5/v2/r/tags/list?n=2",
            "/v2/r/tags/list?last=b&n=2"
        )
        .as_deref(),
        Some("http://h:5/v2/r/tags/list?last=b&n=2")
    );
}
