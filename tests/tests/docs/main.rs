//! The documentation against the code (the project's issue 20): every long flag of every
//! binary is in its reference page (`flags`), the gRPC reference page is what the proto's
//! comments make (`api`), and every relative link of the book and of the top-level Markdown
//! files reaches an existing file and heading (`links`). No daemon, no root.

mod links;

use std::path::{Path, PathBuf};

use execdriver_driver::docgen;

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether `text` has `flag` as a whole word: `--memory` is not found in `--memory-swap`.
fn mentions(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(i, _)| {
        let next = text[i + flag.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

#[test]
fn every_flag_of_every_binary_is_in_its_reference_page() {
    let mut missing = Vec::new();
    let commands = docgen::commands();
    assert_eq!(
        commands.len(),
        4,
        "execdriverd, execdriverctl, execdriver-runc, nsinit"
    );
    for cmd in commands {
        let name = cmd.get_name().to_owned();
        let page = repo().join(format!("docs/src/cli/{name}.md"));
        let text = read(&page);
        let flags = docgen::long_flags(&cmd);
        assert!(!flags.is_empty(), "{name} has no flags?");
        for flag in flags {
            if !mentions(&text, &flag) {
                missing.push(format!("{name} {flag} (docs/src/cli/{name}.md)"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "flags missing from their reference page:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_api_reference_is_what_the_proto_says() {
    let generated = docgen::api_reference().expect("the descriptor set");
    let committed = read(&repo().join("docs/src/grpc-reference.md"));
    assert!(
        generated == committed,
        "docs/src/grpc-reference.md differs from the proto's comments: run ./scripts/docs.sh \
         (or target/debug/execdriver-docgen api docs/src/grpc-reference.md) and commit it"
    );
}

#[test]
fn every_relative_link_resolves() {
    let mut files = links::markdown_under(&repo().join("docs/src"));
    for top in [
        "README.md",
        "CONTRIBUTING.md",
        "SECURITY.md",
        "CHANGELOG.md",
    ] {
        let path = repo().join(top);
        if path.exists() {
            files.push(path);
        }
    }
    let mut broken = Vec::new();
    for file in &files {
        broken.extend(links::broken(file));
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_finds_what_is_broken() {
    let dir = execdriver_tests::TempDir::new("docs-links");
    let page = dir.path.join("a.md");
    std::fs::write(
        &page,
        "# A page\n\n## Two `words`\n\n[ok](#two-words) [ok](b.md#b-heading) [web](https://x)\n\
         [gone](missing.md) [no anchor](#nope) [no anchor there](b.md#nope)\n\
         ```sh\n[in code](missing.md)\n```\n`[inline](missing.md)`\n",
    )
    .unwrap();
    std::fs::write(dir.path.join("b.md"), "# B heading\n").unwrap();
    let broken = links::broken(&page);
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(broken[0].contains("missing.md"), "{broken:#?}");
    assert!(broken[1].contains("#nope"), "{broken:#?}");
    assert!(broken[2].contains("b.md#nope"), "{broken:#?}");
}
