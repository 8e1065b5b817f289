//! `crds/` must be exactly what the Rust types generate.

use palisade_operator::crdgen::render_all;

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = std::path::Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../crds");
    let generated = render_all();
    let mut committed: Vec<String> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    committed.sort();
    let mut expected: Vec<String> = generated.iter().map(|(f, _)| f.clone()).collect();
    expected.sort();
    assert_eq!(
        committed, expected,
        "crds/ holds other files than the generated CRDs"
    );
    for (file, yaml) in generated {
        let on_disk = std::fs::read_to_string(dir.join(&file)).unwrap();
        assert!(
            on_disk == yaml,
            "crds/{file} is out of date: run `cargo run -p palisade-operator --bin crdgen -- --out crds/` and commit the result"
        );
    }
}

#[test]
fn crds_have_short_names_status_and_printer_columns() {
    let all = render_all();
    let ap = &all
        .iter()
        .find(|(f, _)| f.starts_with("authproviders"))
        .unwrap()
        .1;
    for needle in [
        "- ap",
        "status: {}",
        "name: Ready",
        "name: Issuer",
        "name: Replicas",
        "name: Revision",
        "name: Age",
        "x-kubernetes-validations",
    ] {
        assert!(ap.contains(needle), "AuthProvider CRD lacks {needle:?}");
    }
    let oc = &all
        .iter()
        .find(|(f, _)| f.starts_with("oauthclients"))
        .unwrap()
        .1;
    for needle in [
        "- oc",
        "status: {}",
        "name: Client ID",
        "name: Provider",
        "client_credentials",
        "client_secret_post",
    ] {
        assert!(oc.contains(needle), "OAuthClient CRD lacks {needle:?}");
    }
}
