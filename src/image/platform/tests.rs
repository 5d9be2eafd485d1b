use super::*;

fn index(entries: &str) -> ImageIndex {
    ImageIndex::from_reader(format!(r#"{{"schemaVersion":2,"manifests":[{entries}]}}"#).as_bytes())
        .unwrap()
}

fn entry(n: u8, platform: &str) -> String {
    format!(
        r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:{}"{platform}}}"#,
        format!("{n:x}").repeat(64)
    )
}

#[test]
fn arm64_is_arm64_v8() {
    let idx = index(
        &[
            entry(1, r#","platform":{"os":"linux","architecture":"amd64"}"#),
            entry(
                2,
                r#","platform":{"os":"linux","architecture":"arm","variant":"v7"}"#,
            ),
            entry(3, r#","platform":{"os":"linux","architecture":"arm64"}"#),
            entry(
                4,
                r#","platform":{"os":"linux","architecture":"arm64","variant":"v9"}"#,
            ),
        ]
        .join(","),
    );
    let pick = |w: WantedPlatform| w.candidates(&idx).next().map(|d| d.digest().to_string());
    let d = |n: u8| Some(format!("sha256:{}", format!("{n:x}").repeat(64)));
    assert_eq!(
        pick(WantedPlatform::new(Some("linux"), Some("arm64"), None)),
        d(3)
    );
    assert_eq!(
        pick(WantedPlatform::new(Some("linux"), Some("arm64/v8"), None)),
        d(3)
    );
    assert_eq!(
        pick(WantedPlatform::new(
            Some("linux"),
            Some("arm64"),
            Some("v9")
        )),
        d(4)
    );
    assert_eq!(
        pick(WantedPlatform::new(Some("linux"), Some("arm"), Some("v7"))),
        d(2)
    );
    assert_eq!(
        pick(WantedPlatform::new(Some("linux"), Some("arm"), Some("v6"))),
        None
    );
    assert_eq!(
        pick(WantedPlatform::new(Some("linux"), Some("amd64"), None)),
        d(1)
    );
    assert_eq!(
        pick(WantedPlatform::new(Some("windows"), Some("amd64"), None)),
        None
    );
}

#[test]
fn an_explicit_v8_variant_matches_both_spellings() {
    let idx = index(
        &[
            entry(
                1,
                r#","platform":{"os":"linux","architecture":"arm64","variant":"v9"}"#,
            ),
            entry(
                2,
                r#","platform":{"os":"linux","architecture":"arm64","variant":"v8"}"#,
            ),
        ]
        .join(","),
    );
    let pick = |w: WantedPlatform| w.candidates(&idx).next().map(|d| d.digest().to_string());
    let d = |n: u8| Some(format!("sha256:{}", format!("{n:x}").repeat(64)));
    // No variant wanted: the first arm64 entry, whatever its variant.
    assert_eq!(
        pick(WantedPlatform::new(Some("linux"), Some("arm64"), None)),
        d(1)
    );
    assert_eq!(
        pick(WantedPlatform::new(Some("linux"), Some("arm64/v8"), None)),
        d(2)
    );
    assert_eq!(
        pick(WantedPlatform::new(
            Some("linux"),
            Some("arm64"),
            Some("v8")
        )),
        d(2)
    );
}

#[test]
fn entries_without_platform_are_linux_amd64() {
    let idx = index(&entry(5, ""));
    assert_eq!(idx.manifests().len(), 1);
    assert!(
        WantedPlatform::new(Some("linux"), Some("amd64"), None)
            .candidates(&idx)
            .next()
            .is_some()
    );
    assert!(
        WantedPlatform::new(Some("linux"), Some("arm64"), None)
            .candidates(&idx)
            .next()
            .is_none()
    );
}

#[test]
fn attestations_are_never_candidates() {
    let att = |n: u8, platform: &str| {
        entry(
            n,
            &format!(
                r#","annotations":{{"vnd.docker.reference.type":"attestation-manifest","vnd.docker.reference.digest":"sha256:{}"}}{platform}"#,
                "1".repeat(64)
            ),
        )
    };
    let idx = index(
        &[
            // Listed first, and claiming the wanted platform: still skipped.
            att(7, r#","platform":{"os":"linux","architecture":"amd64"}"#),
            entry(1, r#","platform":{"os":"linux","architecture":"amd64"}"#),
            att(
                8,
                r#","platform":{"os":"unknown","architecture":"unknown"}"#,
            ),
            entry(
                9,
                r#","platform":{"os":"unknown","architecture":"unknown"}"#,
            ),
        ]
        .join(","),
    );
    let picks = |w: WantedPlatform| -> Vec<String> {
        w.candidates(&idx).map(|d| d.digest().to_string()).collect()
    };
    assert_eq!(
        picks(WantedPlatform::new(Some("linux"), Some("amd64"), None)),
        [format!("sha256:{}", "1".repeat(64))]
    );
    assert!(picks(WantedPlatform::new(Some("unknown"), Some("unknown"), None)).is_empty());
}

#[test]
fn defaults_come_from_the_host() {
    let w = WantedPlatform::new(None, None, None);
    assert_eq!(w.os, "linux");
    assert_eq!(w.architecture, host_arch());
    assert_eq!(
        WantedPlatform::new(Some("linux"), Some("arm64/v8"), None).to_string(),
        "linux/arm64/v8"
    );
}
