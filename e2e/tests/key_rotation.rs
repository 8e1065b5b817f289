//! Scheduled key rotation with zero failed verifications. A relying-party-like verifier caches
//! JWKS and refetches only on an unknown `kid`; it verifies every token a continuous
//! client_credentials loop obtains across at least three scheduled rotations
//! (`rotationInterval: 40s`, `publishLead: 10s`), with the auth-server reading its key set from a
//! directory kept in sync with the Secret every few seconds (like the kubelet). Then an emergency
//! rotation: new tokens keep verifying, tokens signed before it stop verifying.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use palisade_e2e::{
    client_credentials, cluster, eventually, hygiene::SecretWatch, install_crds, kubectl_ok,
    sample, LocalProvider, TestNamespace,
};
use palisade_operator::crd::AuthProvider;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Verifies like a relying party: cached JWKS, one refetch on an unknown `kid`.
struct Verifier {
    jwks_uri: String,
    issuer: String,
    cache: HashMap<String, DecodingKey>,
    fetches: u32,
}

impl Verifier {
    async fn refresh(&mut self) {
        let set: JwkSet = reqwest::get(&self.jwks_uri)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.fetches += 1;
        self.cache = set
            .keys
            .iter()
            .filter_map(|k| Some((k.common.key_id.clone()?, DecodingKey::from_jwk(k).ok()?)))
            .collect();
    }

    async fn verify(&mut self, token: &str) -> Result<String, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let kid = header.kid.clone().ok_or("no kid")?;
        if !self.cache.contains_key(&kid) {
            self.refresh().await;
        }
        let key = self
            .cache
            .get(&kid)
            .ok_or_else(|| format!("unknown kid {kid}"))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer]);
        v.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(token, key, &v).map_err(|e| e.to_string())?;
        Ok(kid)
    }
}

async fn fetch_token(issuer: &str, id: &str, secret: &str) -> Option<String> {
    let body: serde_json::Value = client_credentials(issuer, id, secret, None)
        .await
        .json()
        .await
        .ok()?;
    body["access_token"].as_str().map(String::from)
}

#[tokio::test]
async fn rotations_never_fail_a_verification() {
    let Some(kube) = cluster().await else { return };
    install_crds();
    let ns = TestNamespace::new(&kube, "rotation").await;
    let aps = Api::<AuthProvider>::namespaced(kube.clone(), &ns.name);
    let spec = serde_json::json!({
        "signingKeys": {"algorithm": "ES256", "rotationInterval": "40s", "publishLead": "10s"},
        "tokens": {"accessTokenTTL": "1m", "idTokenTTL": "1m"}
    });
    // The key directory follows the Secret every 3 s, like the kubelet's (slower) sync.
    let provider = LocalProvider::start(&kube, &ns.name, spec, Duration::from_secs(3)).await;
    let issuer = provider.issuer.clone();
    kubectl_ok(&[
        "apply",
        "--server-side",
        "-n",
        &ns.name,
        "-f",
        &sample("oauthclient-machine.yaml"),
    ]);
    kubectl_ok(&[
        "wait",
        "-n",
        &ns.name,
        "--for=condition=Ready",
        "oc/machine",
        "--timeout=60s",
    ]);
    let creds = Api::<Secret>::namespaced(kube.clone(), &ns.name)
        .get("machine-oauth")
        .await
        .unwrap()
        .data
        .unwrap();
    let id = String::from_utf8(creds["client_id"].0.clone()).unwrap();
    let secret = String::from_utf8(creds["client_secret"].0.clone()).unwrap();
    // Every private key the run uses is watched: gathered again whenever a new key signs, since
    // the Secret drops retired keys.
    let mut watch = SecretWatch::new();
    watch.collect(&ns.name);

    let mut verifier = Verifier {
        jwks_uri: format!("{issuer}/jwks"),
        issuer: issuer.clone(),
        cache: HashMap::new(),
        fetches: 0,
    };
    let (mut ok, mut failed, mut not_issued) = (0u32, Vec::new(), 0u32);
    let mut kids = BTreeSet::new();
    let start = Instant::now();
    // Three rotations take 120 s after the first key; run until the fourth key signs.
    while kids.len() < 4 && start.elapsed() < Duration::from_secs(200) {
        match fetch_token(&issuer, &id, &secret).await {
            Some(token) => match verifier.verify(&token).await {
                Ok(kid) => {
                    ok += 1;
                    if kids.insert(kid) {
                        watch.collect(&ns.name);
                    }
                    watch.add("an access token", &token);
                }
                Err(e) => failed.push(e),
            },
            None => not_issued += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("scheduled rotations: {ok} verified, {} failed, {not_issued} not issued, {} keys, {} JWKS fetches", failed.len(), kids.len(), verifier.fetches);
    assert!(
        kids.len() >= 4,
        "saw only {} keys in {:?}",
        kids.len(),
        start.elapsed()
    );
    assert!(failed.is_empty(), "failed verifications: {failed:?}");
    assert_eq!(not_issued, 0, "token issuance never paused");
    let status = aps.get("dev").await.unwrap().status.unwrap();
    assert!(status
        .conditions
        .iter()
        .any(|c| c.type_ == "KeysReady" && c.status == "True"));

    // Emergency rotation: the compromised keys leave JWKS; a token signed before no longer verifies.
    let old_token = fetch_token(&issuer, &id, &secret).await.unwrap();
    let old_kid = verifier.verify(&old_token).await.unwrap();
    aps.patch("dev", &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"auth.palisade.dev/rotate-keys": "incident-1"}}})))
        .await
        .unwrap();
    let new_kid = eventually(
        "a new key to sign after the emergency rotation",
        Duration::from_secs(30),
        || async {
            let token = fetch_token(&issuer, &id, &secret).await?;
            let kid = jsonwebtoken::decode_header(&token).ok()?.kid?;
            (kid != old_kid && !kids.contains(&kid)).then_some(kid)
        },
    )
    .await;
    let mut emergency_ok = 0;
    for _ in 0..20 {
        let token = fetch_token(&issuer, &id, &secret).await.unwrap();
        assert_eq!(
            verifier.verify(&token).await.unwrap(),
            new_kid,
            "new tokens verify with the new key"
        );
        emergency_ok += 1;
    }
    verifier.refresh().await;
    let stale = verifier.verify(&old_token).await;
    println!("emergency rotation: {emergency_ok} new tokens verified; the pre-rotation token now gives {stale:?} (expected)");
    assert!(
        stale.is_err(),
        "a token signed by a compromised key must stop verifying"
    );
    // The same annotation value never rotates again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let token = fetch_token(&issuer, &id, &secret).await.unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid.unwrap(),
        new_kid
    );
    watch.collect(&ns.name);
    watch.add("an access token", &old_token);
    watch.assert_clean(&ns.name, &provider.logs());
}
