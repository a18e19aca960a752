//! A relative-link checker for Markdown: every `[text](target)` and `![alt](target)` outside
//! code must name an existing file, and its `#anchor` a heading of that file (or of the page
//! itself), with the ids mdBook gives headings. mdBook's own build does not fail on a broken
//! link; this test does.

use std::path::{Path, PathBuf};

/// Every `.md` file under `dir`, sorted.
pub fn markdown_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The broken links of `file`, each as "FILE:LINE: TARGET: why".
pub fn broken(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (line_no, target) in links(&text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
        let resolved = if path.is_empty() {
            file.to_owned()
        } else {
            dir.join(path)
        };
        let why = if !resolved.exists() {
            Some("no such file".to_owned())
        } else if !anchor.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
            let page = std::fs::read_to_string(&resolved).unwrap_or_default();
            (!anchors(&page).iter().any(|a| a == anchor))
                .then(|| format!("no heading with the id {anchor:?}"))
        } else {
            None
        };
        if let Some(why) = why {
            out.push(format!("{}:{line_no}: {target}: {why}", file.display()));
        }
    }
    out
}

/// The lines of `text` outside fenced code blocks, numbered from 1.
fn prose(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut fenced = false;
    text.lines().enumerate().filter_map(move |(i, line)| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return None;
        }
        (!fenced).then_some((i + 1, line))
    })
}

/// `line` without its inline code spans.
fn without_code(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join("")
}

/// Every link target, with its line number.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose(text) {
        let line = without_code(line);
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or_default();
            if !target.is_empty() {
                out.push((n, target.to_owned()));
            }
            rest = &after[end..];
        }
    }
    out
}

/// The ids mdBook gives the headings of `text`: the heading's text without its markup,
/// lowercased, spaces made dashes, other punctuation but `-` and `_` dropped; a repeated id
/// gets `-1`, `-2`, ...
pub fn anchors(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for (_, line) in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let plain = strip_links(heading.trim());
        let id: String = plain
            .chars()
            .filter_map(|c| {
                if c.is_alphanumeric() || c == '_' || c == '-' {
                    Some(c.to_ascii_lowercase())
                } else if c.is_whitespace() {
                    Some('-')
                } else {
                    None
                }
            })
            .collect();
        let repeats = ids
            .iter()
            .filter(|i| *i == &id || i.strip_prefix(&format!("{id}-")).is_some_and(is_number))
            .count();
        ids.push(if repeats == 0 {
            id
        } else {
            format!("{id}-{repeats}")
        });
    }
    ids
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// `[text](target)` as `text`; backticks and emphasis markers dropped.
fn strip_links(heading: &str) -> String {
    let mut out = String::new();
    let mut rest = heading;
    while let Some(i) = rest.find("](") {
        let Some(end) = rest[i..].find(')') else {
            break;
        };
        out.push_str(&rest[..i].replacen('[', "", 1));
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    out.replace(['`', '*'], "")
}
