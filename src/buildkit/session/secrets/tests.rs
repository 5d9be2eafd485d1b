use super::*;
use crate::buildkit::Secret;

#[tokio::test]
async fn serves_each_source_and_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("s");
    std::fs::write(&file, b"from-file").expect("write");
    let service = SecretsService {
        secrets: BTreeMap::from([
            ("f".to_owned(), SecretSource::File(file)),
            ("t".to_owned(), SecretSource::Text(Secret::new("text"))),
            ("e".to_owned(), SecretSource::Env("PATH".into())),
            (
                "missing-env".to_owned(),
                SecretSource::Env("OCI_BUILD_NO_SUCH_VAR_X".into()),
            ),
        ]),
    };
    let get = |id: &str| GetSecretRequest {
        id: id.into(),
        ..Default::default()
    };
    let f = service
        .get_secret(Request::new(get("f")))
        .await
        .expect("f")
        .into_inner();
    assert_eq!(&f.data[..], b"from-file");
    let t = service
        .get_secret(Request::new(get("t")))
        .await
        .expect("t")
        .into_inner();
    assert_eq!(&t.data[..], b"text");
    let e = service
        .get_secret(Request::new(get("e")))
        .await
        .expect("e")
        .into_inner();
    assert_eq!(e.data, std::env::var("PATH").expect("PATH"));
    let nf = service
        .get_secret(Request::new(get("nope")))
        .await
        .expect_err("not found");
    assert_eq!(nf.code(), tonic::Code::NotFound);
    let ne = service
        .get_secret(Request::new(get("missing-env")))
        .await
        .expect_err("unset");
    assert_eq!(ne.code(), tonic::Code::NotFound);
}
