// The same as the shim's: the git commit for `--version` (EXECDRIVER_GIT_COMMIT).
include!("../shim/build.rs");
