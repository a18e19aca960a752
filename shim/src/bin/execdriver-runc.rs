//! `execdriver-runc`: execdriver as an OCI runtime with runc's command line (see
//! `execdriver_shim::runtime`). Single-threaded, no async runtime.

use clap::Parser;

fn main() {
    let cli = execdriver_shim::runtime::Cli::parse();
    std::process::exit(execdriver_shim::runtime::main(cli));
}
