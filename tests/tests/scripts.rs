//! The first-hour scripts, run as a user runs them: `scripts/install.sh` (into a staging root,
//! then `--uninstall`), and `scripts/make-rootfs.sh` (busybox, and an image: an OCI layout as
//! a directory and as a tarball, a `docker save` tarball, with whiteouts and hostile layers),
//! with a container run from the unpacked image.

use std::path::{Path, PathBuf};
use std::process::Command;

use execdriver_tests::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

/// Runs a bash script in `cwd` and returns its stdout; panics with its output if it fails.
fn bash(cwd: &Path, script: &str) -> String {
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("REPO", repo())
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{script}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn script(name: &str) -> PathBuf {
    repo().join("scripts").join(name)
}

#[test]
fn install_puts_everything_on_a_prefix_and_uninstall_takes_it_away() {
    let t = TempDir::new("edinst");
    let stage = t.path.join("stage");
    let install = |extra: &[&str]| {
        let out = Command::new(script("install.sh"))
            .args(["--destdir", stage.to_str().unwrap(), "--prefix", "/opt/ed"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    install(&["--from", bin_dir().to_str().unwrap()]);
    for b in [
        "execdriverd",
        "execdriverctl",
        "execdriver-shim",
        "execdriver-runc",
        "nsinit",
    ] {
        assert!(stage.join("opt/ed/bin").join(b).is_file(), "{b}");
    }
    let unit =
        std::fs::read_to_string(stage.join("etc/systemd/system/execdriverd.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/opt/ed/bin/execdriverd --config /etc/execdriver/config.toml"),
        "{unit}"
    );
    let user_unit =
        std::fs::read_to_string(stage.join("etc/systemd/user/execdriverd.service")).unwrap();
    assert!(
        user_unit.contains("ExecStart=/opt/ed/bin/execdriverd\n")
            && user_unit.contains("Delegate=yes"),
        "{user_unit}"
    );
    let config = stage.join("etc/execdriver/config.toml");
    assert!(config.is_file());
    // Man pages (one per binary and subcommand) and completions, generated from clap.
    let share = stage.join("opt/ed/share");
    for page in [
        "execdriverd.1",
        "execdriverctl.1",
        "execdriverctl-run.1",
        "execdriver-runc.1",
        "nsinit.1",
    ] {
        let text = std::fs::read_to_string(share.join("man/man1").join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}: {text}");
    }
    let run = std::fs::read_to_string(share.join("man/man1/execdriverctl-run.1")).unwrap();
    assert!(run.contains("memory\\-swap"), "{run}");
    for completion in [
        "bash-completion/completions/execdriverctl",
        "zsh/site-functions/_execdriverctl",
        "fish/vendor_completions.d/execdriverctl.fish",
        "bash-completion/completions/nsinit",
    ] {
        let text = std::fs::read_to_string(share.join(completion)).unwrap();
        assert!(!text.is_empty(), "{completion}");
    }
    let version = Command::new(stage.join("opt/ed/bin/execdriverctl"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    // A config the operator changed is kept by a second install and by an uninstall.
    std::fs::write(&config, "log-level = \"debug\"\n").unwrap();
    install(&["--from", bin_dir().to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "log-level = \"debug\"\n"
    );
    install(&["--uninstall"]);
    assert!(!stage.join("opt/ed/bin/execdriverd").exists());
    assert!(!share.join("man/man1/execdriverctl-run.1").exists());
    assert!(!share.join("zsh/site-functions/_execdriverctl").exists());
    assert!(!stage
        .join("etc/systemd/system/execdriverd.service")
        .exists());
    assert!(!stage.join("etc/systemd/user/execdriverd.service").exists());
    assert!(config.exists());
    install(&["--from", bin_dir().to_str().unwrap()]);
    install(&["--uninstall", "--purge"]);
    assert!(!config.exists());
    assert!(!stage.join("opt/ed/bin/execdriverctl").exists());
    // Nothing installed: uninstall says so.
    let out = Command::new(script("install.sh"))
        .args(["--destdir", stage.to_str().unwrap(), "--uninstall"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Writes an OCI image layout in `dir` from layer tarballs (in order): blobs, a config, a
/// manifest and index.json, as `skopeo copy ... oci:DIR` makes.
const MAKE_LAYOUT: &str = r#"
make_layout() { # make_layout DIR LAYER...
  local dir=$1; shift
  mkdir -p "$dir/blobs/sha256"
  local layers="" diffs=""
  for l in "$@"; do
    local d; d=$(sha256sum "$l" | cut -d' ' -f1)
    cp "$l" "$dir/blobs/sha256/$d"
    local mt=application/vnd.oci.image.layer.v1.tar
    case $l in *.gz) mt=$mt+gzip ;; esac
    layers="$layers${layers:+,}{\"mediaType\":\"$mt\",\"digest\":\"sha256:$d\",\"size\":$(stat -c %s "$l")}"
  done
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$dir/config"
  local c; c=$(sha256sum "$dir/config" | cut -d' ' -f1); mv "$dir/config" "$dir/blobs/sha256/$c"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$c" "$(stat -c %s "$dir/blobs/sha256/$c")" "$layers" > "$dir/manifest"
  local m; m=$(sha256sum "$dir/manifest" | cut -d' ' -f1); mv "$dir/manifest" "$dir/blobs/sha256/$m"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' \
    "$m" "$(stat -c %s "$dir/blobs/sha256/$m")" > "$dir/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$dir/oci-layout"
}
"#;

#[tokio::test]
async fn make_rootfs_unpacks_images_layer_by_layer_and_containers_run_from_them() {
    let t = TempDir::new("edimg");
    // Layer 1: a busybox root (made by the script itself) with two files and a directory;
    // layer 2 (gzipped): a whiteout of one file, an opaque directory, a new file.
    bash(
        &t.path,
        &format!(
            r#"{MAKE_LAYOUT}
"$REPO/scripts/make-rootfs.sh" base >/dev/null
mkdir -p base/dir/keep && echo old > base/etc/old && echo a > base/dir/keep/a
tar -C base -cf layer1.tar .
mkdir -p l2/etc l2/dir/keep && echo hello-from-layer2 > l2/etc/hello
touch l2/etc/.wh.old l2/dir/keep/.wh..wh..opq && echo b > l2/dir/keep/b
tar -C l2 -czf layer2.tar.gz .
make_layout layout layer1.tar layer2.tar.gz
tar -C layout -cf layout.tar .
# docker save: manifest.json naming each layer's tar.
mkdir -p save/l1 save/l2 && cp layer1.tar save/l1/layer.tar && gunzip -c layer2.tar.gz > save/l2/layer.tar
printf '[{{"Config":"c.json","RepoTags":["t:1"],"Layers":["l1/layer.tar","l2/layer.tar"]}}]' > save/manifest.json
echo '{{}}' > save/c.json
tar -C save -cf save.tar .
"#
        ),
    );
    for (image, out) in [
        ("layout", "from-dir"),
        ("layout.tar", "from-tar"),
        ("save.tar", "from-save"),
    ] {
        bash(
            &t.path,
            &format!("\"$REPO/scripts/make-rootfs.sh\" {out} {image} >/dev/null"),
        );
        let root = t.path.join(out);
        assert_eq!(
            std::fs::read_to_string(root.join("etc/hello")).unwrap(),
            "hello-from-layer2\n",
            "{image}"
        );
        assert!(!root.join("etc/old").exists(), "{image}: whiteout");
        assert!(!root.join("dir/keep/a").exists(), "{image}: opaque dir");
        assert!(root.join("dir/keep/b").exists(), "{image}");
        assert!(root.join("bin/busybox").is_file(), "{image}");
        assert!(
            !root.join("etc/.wh.old").exists() && !root.join("dir/keep/.wh..wh..opq").exists(),
            "{image}: whiteouts are not files"
        );
    }
    // A container runs from the unpacked image.
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut r = d.request(&["cat", "/etc/hello"]);
    r.rootfs = t.path.join("from-tar").display().to_string();
    let id = r.id.clone();
    c.create(r).await.unwrap();
    let out = attach_collect(&mut c, &id, None, true).await;
    assert_eq!(out.stdout(), "hello-from-layer2\n");
    c.delete(pb::DeleteRequest { id, force: true })
        .await
        .unwrap();
    // A non-empty target is refused.
    let out = Command::new(script("make-rootfs.sh"))
        .arg(t.path.join("from-tar"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn hostile_layers_write_nothing_outside_the_root() {
    let t = TempDir::new("edevil");
    let victim = t.path.join("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    // Layer 1: etc/passwd a symlink to a host file, lib a symlink to the host's directory;
    // layer 2: a regular etc/passwd (must replace the link, not write through it) and a file
    // under lib/ (must be refused: it goes through a symlink). A separate image with a
    // `../escape` member is refused whole.
    bash(
        &t.path,
        &format!(
            r#"{MAKE_LAYOUT}
python3 - <<PY
import io, tarfile
def add(t, name, data=None, link=None, kind=None):
    i = tarfile.TarInfo(name)
    if link is not None:
        i.type, i.linkname = kind or tarfile.SYMTYPE, link
        t.addfile(i)
    else:
        i.size = len(data); t.addfile(i, io.BytesIO(data))
with tarfile.open("l1.tar", "w") as t:
    d = tarfile.TarInfo("etc"); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
    add(t, "etc/passwd", link="{victim}")
with tarfile.open("l2.tar", "w") as t:
    add(t, "etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
with tarfile.open("l3.tar", "w") as t:
    add(t, "lib", link="{dir}")
with tarfile.open("l4.tar", "w") as t:
    add(t, "lib/planted", b"planted\n")
with tarfile.open("l5.tar", "w") as t:
    add(t, "../escape", b"escaped\n")
PY
make_layout img-replace l1.tar l2.tar
make_layout img-through l3.tar l4.tar
make_layout img-escape l5.tar
"#,
            victim = victim.display(),
            dir = t.path.display()
        ),
    );
    bash(
        &t.path,
        "\"$REPO/scripts/make-rootfs.sh\" out-replace img-replace >/dev/null",
    );
    let passwd = t.path.join("out-replace/etc/passwd");
    assert!(!passwd.is_symlink());
    assert_eq!(
        std::fs::read_to_string(&passwd).unwrap(),
        "root:x:0:0::/root:/bin/sh\n"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    for (image, why) in [("through", "symlink"), ("escape", "leaves the root")] {
        let out = Command::new(script("make-rootfs.sh"))
            .arg(t.path.join(format!("out-{image}")))
            .arg(t.path.join(format!("img-{image}")))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{image}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{image}: {err}");
    }
    assert!(!t.path.join("planted").exists());
    assert!(!t.path.join("escape").exists());
}
