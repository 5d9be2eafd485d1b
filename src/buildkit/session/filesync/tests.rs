use super::*;

#[test]
fn unescapes_query_encoding() {
    assert_eq!(query_unescape("%C3%A9t%C3%A9%2F*.txt"), "été/*.txt");
    assert_eq!(query_unescape("a+b%zz%"), "a b%zz%");
}

#[test]
fn reads_encoded_metadata() {
    let mut md = MetadataMap::new();
    md.append("exclude-patterns", "%C3%A9t%C3%A9".parse().expect("ascii"));
    md.append("exclude-patterns", "plain".parse().expect("ascii"));
    md.insert("exclude-patterns-encoded", "1".parse().expect("ascii"));
    assert_eq!(metadata_values(&md, "exclude-patterns"), ["été", "plain"]);
}
