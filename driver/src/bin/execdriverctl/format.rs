//! `--format` of list and state: `json`, or a Go-template-like text as Docker's `--format`
//! takes it: `{{.ID}}\t{{.Status}}`. A field is a key of the JSON that --json prints, in any
//! case and without its underscores (`.ExitCode` is `exit_code`), with dots into objects
//! (`.Network.Address`); `{{json .Labels}}` prints a value as JSON, `{{index .Labels "k"}}`
//! one key of an object as written. `\t` and `\n` in the text are a tab and a newline.

use serde_json::Value;

/// A `--format` as given.
#[derive(Debug, PartialEq)]
pub enum Format {
    /// What --json prints.
    Json,
    /// One line per item: the text with each placeholder filled in.
    Template(Vec<Piece>),
}

#[derive(Debug, PartialEq)]
pub enum Piece {
    Text(String),
    Field {
        /// As written, for messages.
        source: String,
        /// The field names, outermost first.
        path: Vec<String>,
        /// A key of the last object, as written (`index`).
        key: Option<String>,
        /// Print as JSON (`json`).
        json: bool,
    },
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        if s.trim() == "json" {
            return Ok(Format::Json);
        }
        let text = s.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = text.as_str();
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("--format {s:?}: a {{{{ without its }}}}"))?;
            pieces.push(placeholder(s, after[..close].trim())?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Format::Template(pieces))
    }

    /// `v` as this format prints it (a template: one line, without its newline).
    pub fn render(&self, v: &Value) -> Result<String, String> {
        let Format::Template(pieces) = self else {
            return Ok(serde_json::to_string_pretty(v).unwrap_or_default());
        };
        let mut out = String::new();
        for p in pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field {
                    source,
                    path,
                    key,
                    json,
                } => {
                    let mut at = v;
                    for name in path {
                        at = field(at, name).ok_or_else(|| {
                            format!(
                                "--format: {{{{{source}}}}}: no field {name:?} (fields: {})",
                                field_names(at)
                            )
                        })?;
                    }
                    if let Some(k) = key {
                        // A missing key is nothing, as a Go template's index of a map.
                        at = at.get(k).unwrap_or(&Value::Null);
                    }
                    out.push_str(&text_of(at, *json));
                }
            }
        }
        Ok(out)
    }
}

/// One `{{...}}`: `.A.B`, `json .A`, `index .A "key"`, or `.` (the whole item).
fn placeholder(format: &str, inner: &str) -> Result<Piece, String> {
    let bad = || {
        format!(
            "--format {format:?}: {{{{{inner}}}}}: expected {{{{.Field}}}}, {{{{json .Field}}}} \
             or {{{{index .Field \"key\"}}}}"
        )
    };
    let (json, index, expr) = if let Some(e) = inner.strip_prefix("json ") {
        (true, false, e.trim())
    } else if let Some(e) = inner.strip_prefix("index ") {
        (false, true, e.trim())
    } else {
        (false, false, inner)
    };
    let (expr, key) = if index {
        let (e, k) = expr.split_once(char::is_whitespace).ok_or_else(bad)?;
        let k = k.trim();
        let k = k
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .ok_or_else(bad)?;
        (e, Some(k.to_owned()))
    } else {
        (expr, None)
    };
    let path = expr.strip_prefix('.').ok_or_else(bad)?;
    let path: Vec<String> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('.').map(str::to_owned).collect()
    };
    if path
        .iter()
        .any(|n| n.is_empty() || !n.chars().all(|c| c.is_alphanumeric() || c == '_'))
    {
        return Err(bad());
    }
    Ok(Piece::Field {
        source: inner.to_owned(),
        path,
        key,
        json,
    })
}

/// Lower case without underscores: `ExitCode`, `exit_code` and `EXITCODE` are one name.
fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(name).or_else(|| {
        let want = folded(name);
        obj.iter().find(|(k, _)| folded(k) == want).map(|(_, v)| v)
    })
}

fn field_names(v: &Value) -> String {
    match v.as_object() {
        Some(o) => o.keys().cloned().collect::<Vec<_>>().join(", "),
        None => "none: not an object".into(),
    }
}

/// Strings as they are, nothing for null, everything else as JSON.
fn text_of(v: &Value, json: bool) -> String {
    match v {
        _ if json => serde_json::to_string(v).unwrap_or_default(),
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => serde_json::to_string(v).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Value {
        serde_json::json!({
            "id": "web", "status": "running", "pid": 42, "exit_code": null,
            "labels": {"app": "x", "a.b/c": "y"},
            "network": {"mode": "bridge", "address": "10.88.0.2"},
        })
    }

    fn render(f: &str) -> Result<String, String> {
        Format::parse(f)?.render(&item())
    }

    #[test]
    fn templates_fill_in_fields_in_any_case() {
        assert_eq!(render("{{.ID}} {{.Status}}").unwrap(), "web running");
        assert_eq!(render("{{.id}}\\t{{.Pid}}").unwrap(), "web\t42");
        assert_eq!(render("[{{.ExitCode}}]").unwrap(), "[]");
        assert_eq!(render("{{.Network.Address}}").unwrap(), "10.88.0.2");
        assert_eq!(render("{{ .Labels.app }}").unwrap(), "x");
        assert_eq!(render("{{index .Labels \"a.b/c\"}}").unwrap(), "y");
        assert_eq!(render("{{index .Labels \"none\"}}").unwrap(), "");
        assert_eq!(
            render("{{json .Labels}}").unwrap(),
            r#"{"a.b/c":"y","app":"x"}"#
        );
        assert_eq!(render("{{json .Status}}").unwrap(), "\"running\"");
        assert_eq!(render("no fields").unwrap(), "no fields");
        assert_eq!(Format::parse("json").unwrap(), Format::Json);
        let pretty = Format::Json.render(&item()).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&pretty).unwrap(), item());
    }

    #[test]
    fn bad_templates_say_why() {
        let err = render("{{.Nope}}").unwrap_err();
        assert!(
            err.contains("no field \"Nope\"") && err.contains("status"),
            "{err}"
        );
        for bad in ["{{.ID", "{{ID}}", "{{index .Labels app}}", "{{.A..B}}"] {
            let err = render(bad).unwrap_err();
            assert!(err.starts_with("--format"), "{bad}: {err}");
        }
    }
}
