//! containerd through `ctr run --rm` (containerd-shim-runc-v2 + the runtime under test): the
//! container's output and exit code.

use execdriver_tests::engines::{Containerd, Runtime};
use execdriver_tests::unique;

use super::lines;

variants!(ctr_run);

fn ctr_run(rt: &Runtime) {
    let c = Containerd::start(rt);
    let out = c.run(
        &["--rm"],
        &unique("ed"),
        &["sh", "-c", "echo out; echo pid=$$; exit 6"],
    );
    assert_eq!(out.code, 6, "{out:?}");
    assert_eq!(lines(&out.stdout), ["out", "pid=1"], "{out:?}");
    let out = c.run(&["--rm"], &unique("ed"), &["true"]);
    assert_eq!(out.code, 0, "{out:?}");
    // Nothing is left: the container and its task are gone.
    assert_eq!(c.ctr(&["containers", "ls", "-q"]).ok().trim(), "");
}
