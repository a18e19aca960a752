//! `nsinit`: the seed's reference CLI. See `execdriver_shim::nsinit`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("nsinit: the current directory: {e}");
            return ExitCode::from(1);
        }
    };
    let parsed = match execdriver_shim::nsinit::parse_args(&args, &cwd) {
        Ok(a) => a,
        // --help and --version print and exit 0; a usage error prints and exits 2.
        Err(execdriver_shim::nsinit::Error::Usage(e)) => e.exit(),
        Err(e) => {
            eprintln!("nsinit: {e}");
            return ExitCode::from(2);
        }
    };
    match execdriver_shim::nsinit::run(parsed) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("nsinit: {e}");
            ExitCode::from(1)
        }
    }
}
