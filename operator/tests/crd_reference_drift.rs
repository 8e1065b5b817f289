//! `docs/reference/` must be exactly what `crddoc` generates from the CRD schemas.

use palisade_operator::crddoc::render_all;

#[test]
fn committed_reference_matches_the_crd_schemas() {
    let dir = std::path::Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../docs/reference");
    for (file, markdown) in render_all() {
        let on_disk = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        assert!(
            on_disk == markdown,
            "docs/reference/{file} is out of date: run `cargo run -p palisade-operator --bin crddoc -- --out docs/reference/` and commit the result"
        );
    }
}
