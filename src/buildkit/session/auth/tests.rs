use super::*;
use crate::buildkit::Secret;

fn service() -> AuthService {
    AuthService {
        credentials: vec![
            RegistryAuth {
                host: "https://index.docker.io/v1/".into(),
                username: "hub".into(),
                password: Secret::new("hubpw"),
            },
            RegistryAuth {
                host: "Registry.Example:5000".into(),
                username: "u".into(),
                password: Secret::new("p"),
            },
        ],
    }
}

#[tokio::test]
async fn answers_per_host() {
    let s = service();
    let ask = |host: &str| CredentialsRequest { host: host.into() };
    let hub = s
        .credentials(Request::new(ask("registry-1.docker.io")))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        (hub.username.as_str(), hub.secret.as_str()),
        ("hub", "hubpw")
    );
    let other = s
        .credentials(Request::new(ask("registry.example:5000")))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(other.username, "u");
    let none = s
        .credentials(Request::new(ask("elsewhere:5000")))
        .await
        .expect("ok")
        .into_inner();
    assert!(none.username.is_empty() && none.secret.is_empty());
    let authority = s
        .get_token_authority(Request::new(GetTokenAuthorityRequest::default()))
        .await
        .expect_err("unimplemented");
    assert_eq!(authority.code(), tonic::Code::Unimplemented);
}
