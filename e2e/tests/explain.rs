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

/// Every spec field path of a CRD's served schema, depth first, with its description.
fn spec_fields(crd_file: &str) -> Vec<(String, String)> {
    fn walk(node: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
        if node["type"] == "array" {
            return walk(&node["items"], path, out);
        }
        if let Some(props) = node["properties"].as_object() {
            for (name, child) in props {
                let here = format!("{path}.{name}");
                let description = child["description"].as_str().unwrap_or("").to_string();
                out.push((here.clone(), description));
                walk(child, &here, out);
            }
        }
    }
    let path = palisade_e2e::repo_root().join("crds").join(crd_file);
    let crd: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    walk(
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"],
        "spec",
        &mut out,
    );
    out
}

/// Fields whose sub-fields are Kubernetes' own types (documented upstream, same text).
const EMBEDDED: [&str; 5] = [
    "spec.affinity.",
    "spec.tolerations.",
    "spec.resources.",
    "spec.clientNamespaces.selector.",
    "spec.nodeSelector.",
];

#[tokio::test]
async fn kubectl_explain_describes_every_nested_spec_field() {
    if cluster().await.is_none() {
        return;
    }
    install_crds();
    for (kind, file) in [
        ("authprovider", "authproviders.auth.palisade.dev.yaml"),
        ("oauthclient", "oauthclients.auth.palisade.dev.yaml"),
    ] {
        let fields = spec_fields(file);
        assert!(fields.len() > 10, "{kind}: {fields:?}");
        for (path, description) in &fields {
            assert!(
                description.split_whitespace().count() >= 3,
                "{kind}.{path} has no real description: {description:?}"
            );
            if EMBEDDED.iter().any(|p| path.starts_with(p)) {
                continue;
            }
            // The API server serves that text: `kubectl explain` shows its first words.
            let text = kubectl_ok(&["explain", &format!("{kind}.{path}")])
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let first_words = description
                .split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                text.contains(&first_words),
                "kubectl explain {kind}.{path} does not show {first_words:?}:\n{text}"
            );
        }
    }
}
