//! The gRPC API's reference page (docs/src/grpc-reference.md), rendered from the descriptor
//! set the proto crate compiles with its source info: every service, rpc, message, field, enum
//! and value with its comment from `proto/execdriver/v1/execdriver.proto`.

use std::fmt::Write;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::source_code_info::Location;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet,
};

/// Field numbers of descriptor.proto used in SourceCodeInfo paths.
const FILE_SYNTAX: i32 = 12;
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

const FILE: &str = "execdriver/v1/execdriver.proto";
const PACKAGE: &str = ".execdriver.v1.";

/// The reference page, in Markdown. An error only if the descriptor set compiled into the
/// proto crate cannot be read (a broken build).
pub fn api_reference() -> Result<String, String> {
    let set = FileDescriptorSet::decode(execdriver_proto::v1::FILE_DESCRIPTOR_SET)
        .map_err(|e| format!("the descriptor set: {e}"))?;
    let file = set
        .file
        .iter()
        .find(|f| f.name() == FILE)
        .ok_or_else(|| format!("{FILE} is not in the descriptor set"))?;
    Ok(Page::new(file).render())
}

struct Page<'a> {
    file: &'a FileDescriptorProto,
    locations: &'a [Location],
    out: String,
}

impl<'a> Page<'a> {
    fn new(file: &'a FileDescriptorProto) -> Self {
        let locations = file
            .source_code_info
            .as_ref()
            .map_or(&[][..], |s| &s.location[..]);
        Page {
            file,
            locations,
            out: String::new(),
        }
    }

    fn location(&self, path: &[i32]) -> Option<&Location> {
        self.locations.iter().find(|l| l.path == path)
    }

    /// The comment before the element at `path`, as paragraphs (its own line breaks kept).
    fn comment(&self, path: &[i32]) -> String {
        self.location(path)
            .and_then(|l| l.leading_comments.as_deref())
            .map(unindent)
            .unwrap_or_default()
    }

    fn render(mut self) -> String {
        self.out.push_str(
            "# Reference: execdriver.v1\n\n\
             <!-- Generated from proto/execdriver/v1/execdriver.proto by `execdriver-docgen api`\n\
             (scripts/docs.sh); do not edit: change the proto's comments. -->\n\n",
        );
        let header = self
            .location(&[FILE_SYNTAX])
            .map(|l| {
                let mut text: Vec<String> = l
                    .leading_detached_comments
                    .iter()
                    .map(|c| unindent(c))
                    .collect();
                text.extend(l.leading_comments.as_deref().map(unindent));
                text.join("\n\n")
            })
            .unwrap_or_default();
        let _ = writeln!(
            self.out,
            "The contract, `proto/execdriver/v1/execdriver.proto`, package `{}`, with \
             every comment it has.\n\n{}\n",
            self.file.package(),
            header.trim_end()
        );
        for (i, s) in self.file.service.iter().enumerate() {
            let path = [FILE_SERVICE, i as i32];
            let _ = writeln!(
                self.out,
                "## Service {}\n\n{}",
                s.name(),
                self.comment(&path)
            );
            self.out
                .push_str("| rpc | request | response | what it does |\n|---|---|---|---|\n");
            for (j, m) in s.method.iter().enumerate() {
                let what = cell(&self.comment(&[FILE_SERVICE, i as i32, SERVICE_METHOD, j as i32]));
                let stream = |yes: bool| if yes { "stream " } else { "" };
                let _ = writeln!(
                    self.out,
                    "| `{}` | {}{} | {}{} | {} |",
                    m.name(),
                    stream(m.client_streaming()),
                    type_link(m.input_type()),
                    stream(m.server_streaming()),
                    type_link(m.output_type()),
                    what
                );
            }
            self.out.push('\n');
        }
        self.out.push_str("## Messages\n\n");
        for (i, m) in self.file.message_type.iter().enumerate() {
            self.message(m, vec![FILE_MESSAGE, i as i32], "");
        }
        self.out.push_str("## Enums\n\n");
        for (i, e) in self.file.enum_type.iter().enumerate() {
            self.enumeration(e, vec![FILE_ENUM, i as i32], "");
        }
        self.out.trim_end().to_owned() + "\n"
    }

    fn message(&mut self, m: &DescriptorProto, path: Vec<i32>, scope: &str) {
        if m.options.as_ref().is_some_and(|o| o.map_entry()) {
            return;
        }
        let name = format!("{scope}{}", m.name());
        let _ = writeln!(self.out, "### {name}\n\n{}", self.comment(&path));
        if !m.field.is_empty() {
            self.out
                .push_str("| field | type | number | meaning |\n|---|---|---:|---|\n");
        }
        for (i, f) in m.field.iter().enumerate() {
            let mut p = path.clone();
            p.extend([MESSAGE_FIELD, i as i32]);
            let mut what = cell(&self.comment(&p));
            if let Some(o) = f.oneof_index.and_then(|o| m.oneof_decl.get(o as usize)) {
                if !f.proto3_optional() {
                    what = format!("(one of `{}`) {what}", o.name());
                }
            }
            let _ = writeln!(
                self.out,
                "| `{}` | {} | {} | {} |",
                f.name(),
                field_type(f, m),
                f.number(),
                what
            );
        }
        self.out.push('\n');
        for (i, n) in m.nested_type.iter().enumerate() {
            let mut p = path.clone();
            p.extend([MESSAGE_NESTED, i as i32]);
            self.message(n, p, &format!("{name}."));
        }
        for (i, e) in m.enum_type.iter().enumerate() {
            let mut p = path.clone();
            p.extend([MESSAGE_ENUM, i as i32]);
            self.enumeration(e, p, &format!("{name}."));
        }
    }

    fn enumeration(&mut self, e: &EnumDescriptorProto, path: Vec<i32>, scope: &str) {
        let name = format!("{scope}{}", e.name());
        let _ = writeln!(self.out, "### {name}\n\n{}", self.comment(&path));
        self.out
            .push_str("| value | number | meaning |\n|---|---:|---|\n");
        for (i, v) in e.value.iter().enumerate() {
            let mut p = path.clone();
            p.extend([ENUM_VALUE, i as i32]);
            let _ = writeln!(
                self.out,
                "| `{}` | {} | {} |",
                v.name(),
                v.number(),
                cell(&self.comment(&p))
            );
        }
        self.out.push('\n');
    }
}

/// A comment's lines without the one space protoc leaves after `//`, ending in a blank line.
fn unindent(c: &str) -> String {
    let text: Vec<&str> = c
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect();
    let text = escape_html(&text.join("\n"));
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("{text}\n")
    }
}

/// `<` and `>` outside code spans as entities, so `/proc/<pid>` is no HTML tag to Markdown.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut code = false;
    for c in text.chars() {
        match c {
            '`' => {
                code = !code;
                out.push(c);
            }
            '<' if !code => out.push_str("&lt;"),
            '>' if !code => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// A comment as one table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// A message or enum type as a link to its section: `.execdriver.v1.Foo.Bar` -> `Foo.Bar`,
/// whose heading's anchor is `#foobar`; other packages' types (Timestamp) as they are.
fn type_link(full: &str) -> String {
    match full.strip_prefix(PACKAGE) {
        Some(name) => format!("[{name}](#{})", name.to_ascii_lowercase().replace('.', "")),
        None => format!("`{}`", full.trim_start_matches('.')),
    }
}

fn field_type(f: &FieldDescriptorProto, owner: &DescriptorProto) -> String {
    let base = |f: &FieldDescriptorProto| match f.r#type() {
        Type::Message | Type::Enum => type_link(f.type_name()),
        t => format!("`{}`", scalar(t)),
    };
    if f.label() == Label::Repeated {
        // A map<K, V> is a repeated field of a nested *Entry type the compiler made.
        let entry = f.type_name().rsplit('.').next().unwrap_or_default();
        if let Some(e) = owner
            .nested_type
            .iter()
            .find(|n| n.name() == entry && n.options.as_ref().is_some_and(|o| o.map_entry()))
        {
            if let [k, v] = &e.field[..] {
                return format!("map&lt;{}, {}&gt;", base(k), base(v));
            }
        }
        return format!("repeated {}", base(f));
    }
    let optional = if f.proto3_optional() { "optional " } else { "" };
    format!("{optional}{}", base(f))
}

fn scalar(t: Type) -> &'static str {
    match t {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => "message",
    }
}
