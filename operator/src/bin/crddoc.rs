//! Writes the API reference generated from the CRD schemas: `crddoc --out docs/reference/`
//! (or prints it to stdout without `--out`).

use palisade_operator::crddoc::render_all;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--out") {
        Some(i) => {
            let dir = std::path::Path::new(
                args.get(i + 1)
                    .map(String::as_str)
                    .unwrap_or("docs/reference"),
            );
            std::fs::create_dir_all(dir)?;
            for (file, markdown) in render_all() {
                std::fs::write(dir.join(file), markdown)?;
            }
            Ok(())
        }
        None => {
            for (_, markdown) in render_all() {
                print!("{markdown}");
            }
            Ok(())
        }
    }
}
