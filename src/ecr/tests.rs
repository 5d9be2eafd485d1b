use super::*;

#[test]
fn test_endpoint_only_on_loopback_http() {
    for ok in [
        "http://127.0.0.1:5000",
        "http://localhost:1/",
        "http://[::1]:9/",
    ] {
        assert!(is_loopback_http(ok), "{ok}");
    }
    for bad in [
        "https://127.0.0.1:5000",
        "http://10.0.0.1:5000",
        "http://127.0.0.1.evil.example/",
        "http://sts.amazonaws.com",
        "http://localhost.evil:1",
    ] {
        assert!(!is_loopback_http(bad), "{bad}");
    }
}

#[test]
fn repository_name_goes_on_the_ecr_host() {
    let source = |repo: &str| {
        Source::from_value(serde_json::json!({"repository": repo, "aws_region": "eu-west-1"}))
            .unwrap()
    };
    let login = |host: &str| Login {
        host: host.into(),
        password: Secret::new("pw-987654321"),
    };
    let s = source("team/app");
    let mut ecr = s.ecr.clone().unwrap();
    let proxy = Some("https://111122223333.dkr.ecr.eu-west-1.amazonaws.com");
    assert_eq!(
        registry_host(&ecr, proxy).as_deref(),
        Some("111122223333.dkr.ecr.eu-west-1.amazonaws.com")
    );
    assert_eq!(registry_host(&ecr, None), None);
    ecr.account_id = Some("210987654321".into());
    let host = registry_host(&ecr, proxy).unwrap();
    assert_eq!(host, "210987654321.dkr.ecr.eu-west-1.amazonaws.com");
    let out = with_login(s, &ecr, login(&host)).unwrap();
    assert_eq!(
        out.repository.qualified(),
        "210987654321.dkr.ecr.eu-west-1.amazonaws.com/team/app"
    );
    assert_eq!(out.username.as_deref(), Some("AWS"));
    assert_eq!(out.password.unwrap().expose(), "pw-987654321");
    // A repository that names its host keeps it.
    let s = source("127.0.0.1:5000/team/app");
    let ecr = s.ecr.clone().unwrap();
    let out = with_login(s, &ecr, login("elsewhere.example")).unwrap();
    assert_eq!(out.repository.qualified(), "127.0.0.1:5000/team/app");
}

#[test]
fn xml_and_form_helpers() {
    let xml = "<R><Credentials><AccessKeyId> AK </AccessKeyId><Code>X</Code></Credentials></R>";
    assert_eq!(xml_text(xml, "AccessKeyId"), Some("AK"));
    assert_eq!(xml_text(xml, "SessionToken"), None);
    assert_eq!(
        form_encode("arn:aws:iam::1:role/a b"),
        "arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b"
    );
}
