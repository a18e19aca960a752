//! Real container engines with an OCI runtime of the test's choice: Docker (`docker`), Podman
//! (`podman`) and containerd's ctr (`containerd`), each started on private paths by the harness
//! in `execdriver_tests::engines` and stopped with all it made when the test ends.
//!
//! Every case is a function taking the [`Runtime`]; [`variants!`] makes two tests of each:
//! `<case>::runc` (Debian's runc: proves the harness and the case) and `<case>::execdriver`
//! (`target/<profile>/execdriver-runc`, or the binary named in `$EDTEST_OCI_RUNTIME`; skipped,
//! with the reason printed, when that binary does not exist). `--test engines ::runc` runs the
//! runc half, `docker::` one engine.
//!
//! A case asserts what a process inside the container sees, or what the engine reports of it.

use execdriver_tests::engines::Runtime;

/// For each case `f(&Runtime)` in scope, a module `f` with the tests `runc` and `execdriver`.
macro_rules! variants {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn runc() {
                super::$case(&execdriver_tests::engines::Runtime::runc());
            }

            #[test]
            fn execdriver() {
                if let Some(rt) = execdriver_tests::engines::Runtime::execdriver() {
                    super::$case(&rt);
                }
            }
        }
    )*};
}

mod containerd;
mod cri;
mod docker;
mod docker_config;
mod harness;
mod podman;
mod podman_rootless;

/// The lines of `text`, trimmed, without empty ones.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Waits until the shell on `term` reports the terminal size `rows cols` (`stty size`, asked
/// again every 200 ms: an engine sets the size of an exec'd terminal just after starting it, so
/// the first answer may be the size before); returns the offset past it. Panics after 20 s.
fn wait_for_size(term: &mut execdriver_tests::Terminal, rows: u16, cols: u16) -> usize {
    let want = format!("{rows} {cols}\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        term.send("stty size\n");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let text = term.text();
        if let Some(at) = text.find(&want) {
            return at + want.len();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the terminal never had the size {rows}x{cols}:\n{text}"
        );
    }
}

/// Every runtime variant is well-formed: runc exists (the harness's reference), and the
/// execdriver variant's binary is either missing (skipped) or a file.
#[test]
fn runtimes_resolve() {
    let runc = Runtime::runc();
    assert!(runc.path.is_file(), "{runc:?}");
    if let Some(rt) = Runtime::execdriver() {
        assert!(rt.path.is_file(), "{rt:?}");
    }
}
