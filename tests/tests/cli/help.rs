//! `--help`: every flag and positional of every subcommand has a line saying what it is, and
//! the aliases are listed.

use std::process::Command;

use execdriver_tests::bin;

fn help_with(args: &[&str], flag: &str) -> String {
    let o = Command::new(bin("execdriverctl"))
        .args(args)
        .arg(flag)
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?} {flag}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn help(args: &[&str]) -> String {
    help_with(args, "--help")
}

/// The entries of a help text's sections (`Commands:`, `Arguments:`, `Options:`), each with
/// its description (empty when it has none): clap puts it after the name on the same line,
/// or on the lines below, indented further.
fn entries(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') {
            section = line;
            continue;
        }
        if !matches!(section, "Commands:" | "Arguments:" | "Options:") || line.trim().is_empty() {
            continue;
        }
        let item = line.trim_start();
        let indent = line.len() - item.len();
        let is_entry = indent <= 6
            && (item.starts_with(['-', '<', '[']) || (section == "Commands:" && indent == 2));
        if is_entry {
            // "  -s, --signal <SIGNAL>  The signal..." or "  <ID>  The container's id".
            let (name, desc) = match item.find("  ") {
                Some(i) => (&item[..i], item[i..].trim()),
                None => (item.trim_end(), ""),
            };
            out.push((name.to_owned(), desc.to_owned()));
        } else if let Some((_, desc)) = out.last_mut() {
            if desc.is_empty() {
                *desc = item.trim().to_owned();
            }
        }
    }
    out
}

#[test]
fn every_flag_and_argument_has_a_help_line_and_aliases_are_listed() {
    let top = help(&[]);
    let commands: Vec<String> = entries(&top)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|n| !n.starts_with('-') && n != "help")
        .collect();
    assert!(commands.len() > 20, "{top}");
    let line_of = |name: &str| {
        top.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {top}"))
            .to_owned()
    };
    assert!(
        line_of("list").contains("[aliases: ls]") || line_of("list").contains("[alias: ls]"),
        "{top}"
    );
    assert!(line_of("delete").contains("rm]"), "{top}");
    let mut missing = Vec::new();
    for cmd in &commands {
        for flag in ["--help", "-h"] {
            let text = help_with(&[cmd], flag);
            let found = entries(&text);
            assert!(
                found.iter().any(|(n, _)| n.starts_with("-h, --help")),
                "{text}"
            );
            for (name, desc) in found {
                if desc.is_empty() {
                    missing.push(format!("{cmd} {flag}: {name}"));
                }
            }
        }
    }
    missing.dedup();
    assert!(missing.is_empty(), "without a help line: {missing:?}");
    // The ones that had none, and Docker's spellings shown as aliases.
    let run = help(&["run"]);
    for needle in [
        "--hostname <HOSTNAME>",
        "--name",
        "-v, --mount",
        "-w, --cwd",
        "-e, --env",
        "<COMMAND>...",
    ] {
        assert!(run.contains(needle), "run --help lacks {needle}:\n{run}");
    }
    for (cmd, needle) in [
        ("delete", "-f, --force"),
        ("logs", "-f, --follow"),
        ("logs", "-n, --tail"),
        ("wait", "--exec"),
        ("list", "-q, --quiet"),
        ("list", "--format"),
        ("state", "--format"),
        ("start", "<ID>"),
    ] {
        let text = help(&[cmd]);
        let (_, desc) = entries(&text)
            .into_iter()
            .find(|(n, _)| n.contains(needle))
            .unwrap_or_else(|| panic!("{cmd} --help lacks {needle}:\n{text}"));
        assert!(!desc.is_empty(), "{cmd} {needle}");
    }
}
