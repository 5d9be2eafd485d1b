//! [`Signer`] and [`Verifier`] against the TLS+htpasswd test registry: a
//! second signature by the same key is not added, other layers are kept,
//! and a signature copied from another repository (or over another digest)
//! does not verify. What the `sigstore` crate makes of our signatures is
//! checked in `tests/it/sign.rs`.

use std::collections::BTreeMap;

use super::*;
use crate::registry::Access;
use crate::registry::test_registry::TestRegistryExt;
use test_support::{registry, umoci_layout, unique};

/// An image in `repo` of the test registry; its digest.
fn image(reg: &registry::Registry, repo: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let layout = umoci_layout(dir.path(), "t", text);
    reg.push(&format!("oci:{}:t", layout.display()), repo, "t", false);
    crate::oci::sha256_digest(&reg.inspect_raw(&format!("{repo}:t"))).into_string()
}

fn layers(reg: &registry::Registry, repo: &str, digest: &str) -> usize {
    let raw = reg.inspect_raw(&format!("{repo}:{}", storage::signature_tag(digest)));
    SignatureManifest::parse(&raw).unwrap().signatures().len()
}

crate::registry::test_registry::needs_test_registry! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signing_twice_adds_one_signature_and_other_keys_are_kept() {
        crate::tls::install_crypto_provider();
        let reg = registry::tls_auth();
        let repo = unique("sign-unit");
        let digest = image(reg, &repo, "signed twice");
        let client = reg.client(&repo, Access::Push);
        let a = Signer::new(PrivateKey::generate(), BTreeMap::new());
        let b = Signer::new(
            PrivateKey::generate(),
            BTreeMap::from([("commit".into(), "abc".into())]),
        );
        let first = a
            .sign(&client, std::slice::from_ref(&digest))
            .await
            .unwrap();
        assert_eq!(first.added, std::slice::from_ref(&digest));
        let again = a
            .sign(&client, std::slice::from_ref(&digest))
            .await
            .unwrap();
        assert_eq!(again.kept, std::slice::from_ref(&digest));
        assert_eq!(layers(reg, &repo, &digest), 1);
        b.sign(&client, std::slice::from_ref(&digest))
            .await
            .unwrap();
        assert_eq!(layers(reg, &repo, &digest), 2);

        let repository = client.repository().clone();
        for signer in [&a, &b] {
            let v = Verifier::new(vec![signer.public().clone()]);
            assert_eq!(
                v.verify(&client, &repository, &digest).await.unwrap(),
                signer.fingerprint()
            );
        }
        let stranger = Verifier::new(vec![PrivateKey::generate().public().clone()]);
        let err = stranger
            .verify(&client, &repository, &digest)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("2 signature(s), none valid"),
            "{err}"
        );
        let other = image(reg, &repo, "never signed");
        let err = Verifier::new(vec![a.public().clone()])
            .verify(&client, &repository, &other)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no signature tag"), "{err}");
        assert!(err.to_string().contains(&other), "{err}");
    }
}

crate::registry::test_registry::needs_test_registry! {
    /// The same image and its signature manifest copied to another repository
    /// (skopeo copies the `.sig` tag as any tag): the payload names the first
    /// repository, so the copy does not verify there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signature_copied_to_another_repository_does_not_verify_there() {
        crate::tls::install_crypto_provider();
        let reg = registry::tls_auth();
        let (repo, copy) = (unique("sign-origin"), unique("sign-copy"));
        let digest = image(reg, &repo, "copied");
        let client = reg.client(&repo, Access::Push);
        let signer = Signer::new(PrivateKey::generate(), BTreeMap::new());
        signer
            .sign(&client, std::slice::from_ref(&digest))
            .await
            .unwrap();
        let tag = storage::signature_tag(&digest);
        for t in ["t", tag.as_str()] {
            test_support::run_tool(
                std::process::Command::new("skopeo")
                    .arg("copy")
                    .arg("--quiet")
                    .arg("--preserve-digests")
                    .args(reg.skopeo_src_args())
                    .args(reg.skopeo_dest_args())
                    .arg(format!("docker://{}/{repo}:{t}", reg.host))
                    .arg(format!("docker://{}/{copy}:{t}", reg.host)),
            );
        }
        let verifier = Verifier::new(vec![signer.public().clone()]);
        let copy_client = reg.client(&copy, Access::Pull);
        let err = verifier
            .verify(&copy_client, copy_client.repository(), &digest)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unsigned { .. }), "{err}");
        verifier
            .verify(&client, client.repository(), &digest)
            .await
            .unwrap();
    }
}
