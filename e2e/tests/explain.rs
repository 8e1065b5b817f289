//! The CRD doc comments reach users through `kubectl explain`, for every field.

use palisade_e2e::{cluster, install_crds, kubectl_ok};

#[tokio::test]
async fn kubectl_explain_documents_every_field() {
    if cluster().await.is_none() {
        return;
    }
    install_crds();
    for (path, expected) in [
        (
            "authprovider.spec.issuer",
            "exactly as relying parties will see it",
        ),
        (
            "authprovider.spec.signingKeys.publishLead",
            "published in JWKS",
        ),
        (
            "authprovider.spec.clientNamespaces.policy",
            "only the provider's namespace",
        ),
        (
            "authprovider.status.lastGoodRevision",
            "rolled out successfully",
        ),
        ("oauthclient.spec.redirectUris", "matched exactly"),
        ("oauthclient.spec.public", "must use PKCE"),
    ] {
        let text = kubectl_ok(&["explain", path])
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains(expected),
            "kubectl explain {path} lacks {expected:?}:\n{text}"
        );
    }
    // Every spec field has a description: `--recursive` lists them, and none is undocumented.
    for kind in ["authprovider", "oauthclient"] {
        let fields = kubectl_ok(&[
            "explain",
            &format!("{kind}.spec"),
            "--recursive",
            "--output=plaintext-openapiv2",
        ]);
        let names: Vec<&str> = fields
            .lines()
            .skip_while(|l| !l.starts_with("FIELDS:"))
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
            .collect();
        assert!(names.len() > 5, "{kind}: no fields listed:\n{fields}");
        let top_level: Vec<&str> = fields
            .lines()
            .skip_while(|l| !l.starts_with("FIELDS:"))
            .skip(1)
            .filter(|l| l.starts_with("   ") && !l.starts_with("     "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for field in top_level {
            let text = kubectl_ok(&["explain", &format!("{kind}.spec.{field}")]);
            let description = text.split("DESCRIPTION:").nth(1).unwrap_or("").trim();
            assert!(
                !description.is_empty() && !description.starts_with("<empty>"),
                "{kind}.spec.{field} has no description"
            );
        }
    }
}
