//! `execdriver-docgen`: writes what the documentation generates from the code (see
//! `execdriver_driver::docgen`). Run by scripts/docs.sh and scripts/install.sh; not installed.
//!
//! ```text
//! execdriver-docgen man DIR           # NAME.1 and NAME-SUBCOMMAND.1 of every binary
//! execdriver-docgen completions DIR   # DIR/bash/NAME, DIR/zsh/_NAME, DIR/fish/NAME.fish
//! execdriver-docgen api [FILE]        # the gRPC reference page (stdout without FILE)
//! ```

use std::path::Path;
use std::process::ExitCode;

use execdriver_driver::docgen;

const USAGE: &str = "usage: execdriver-docgen man DIR | completions DIR | api [FILE]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args[..] {
        ["man", dir] => docgen::man_pages(Path::new(dir)).map_err(|e| format!("{dir}: {e}")),
        ["completions", dir] => {
            docgen::completions(Path::new(dir)).map_err(|e| format!("{dir}: {e}"))
        }
        ["api"] => docgen::api_reference().map(|text| print!("{text}")),
        ["api", file] => docgen::api_reference()
            .and_then(|text| std::fs::write(file, text).map_err(|e| format!("{file}: {e}"))),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("execdriver-docgen: {e}");
            ExitCode::FAILURE
        }
    }
}
