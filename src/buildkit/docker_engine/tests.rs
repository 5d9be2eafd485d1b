use super::*;

#[tokio::test]
async fn no_engine_means_unknown() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(has_bridge(&dir.path().join("none.sock")).await, None);
}
