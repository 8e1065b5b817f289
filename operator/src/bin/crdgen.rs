//! Prints the CustomResourceDefinitions generated from the Rust types, or writes them to a
//! directory: `crdgen` (stdout) or `crdgen --out crds/`.

use palisade_operator::crdgen::render_all;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--out") {
        Some(i) => {
            let dir = std::path::Path::new(args.get(i + 1).map(String::as_str).unwrap_or("crds"));
            std::fs::create_dir_all(dir)?;
            for (file, yaml) in render_all() {
                std::fs::write(dir.join(file), yaml)?;
            }
            Ok(())
        }
        None => {
            for (_, yaml) in render_all() {
                print!("---\n{yaml}");
            }
            Ok(())
        }
    }
}
