//! The proto is the public contract: every service, rpc, message, field, enum and enum value of
//! execdriver.v1 has a leading comment, and every enum starts with an `*_UNSPECIFIED = 0` value.
//! Read from the descriptor set build.rs compiles (with its source code info).

use prost::Message;
use prost_types::source_code_info::Location;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};

/// Field numbers of descriptor.proto used in SourceCodeInfo paths.
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

struct Check<'a> {
    locations: &'a [Location],
    missing: Vec<String>,
    bad_enums: Vec<String>,
}

impl Check<'_> {
    fn documented(&mut self, path: &[i32], what: String) {
        let ok = self.locations.iter().any(|l| {
            l.path == path
                && l.leading_comments
                    .as_deref()
                    .is_some_and(|c| !c.trim().is_empty())
        });
        if !ok {
            self.missing.push(what);
        }
    }

    fn message(&mut self, m: &DescriptorProto, path: Vec<i32>, scope: &str) {
        if m.options.as_ref().is_some_and(|o| o.map_entry()) {
            return; // map<K, V> entries are made by the compiler
        }
        let name = format!("{scope}{}", m.name());
        self.documented(&path, format!("message {name}"));
        for (i, f) in m.field.iter().enumerate() {
            let mut p = path.clone();
            p.extend([MESSAGE_FIELD, i as i32]);
            self.documented(&p, format!("field {name}.{}", f.name()));
        }
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
        self.documented(&path, format!("enum {name}"));
        match e.value.first() {
            Some(v) if v.number() == 0 && v.name().ends_with("_UNSPECIFIED") => {}
            _ => self.bad_enums.push(name.clone()),
        }
        for (i, v) in e.value.iter().enumerate() {
            let mut p = path.clone();
            p.extend([ENUM_VALUE, i as i32]);
            self.documented(&p, format!("enum value {name}.{}", v.name()));
        }
    }
}

#[test]
fn every_element_of_the_contract_is_documented() {
    let set = FileDescriptorSet::decode(execdriver_proto::v1::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    let mut seen = 0;
    for file in set.file.iter().filter(|f| f.package() == "execdriver.v1") {
        seen += 1;
        let info = file
            .source_code_info
            .as_ref()
            .expect("build.rs keeps source code info");
        let mut check = Check {
            locations: &info.location,
            missing: Vec::new(),
            bad_enums: Vec::new(),
        };
        for (i, m) in file.message_type.iter().enumerate() {
            check.message(m, vec![FILE_MESSAGE, i as i32], "");
        }
        for (i, e) in file.enum_type.iter().enumerate() {
            check.enumeration(e, vec![FILE_ENUM, i as i32], "");
        }
        for (i, s) in file.service.iter().enumerate() {
            check.documented(&[FILE_SERVICE, i as i32], format!("service {}", s.name()));
            for (j, m) in s.method.iter().enumerate() {
                check.documented(
                    &[FILE_SERVICE, i as i32, SERVICE_METHOD, j as i32],
                    format!("rpc {}.{}", s.name(), m.name()),
                );
            }
        }
        assert!(
            check.missing.is_empty(),
            "{}: {} elements lack a leading comment:\n  {}",
            file.name(),
            check.missing.len(),
            check.missing.join("\n  ")
        );
        assert!(
            check.bad_enums.is_empty(),
            "enums whose zero value is not *_UNSPECIFIED: {:?}",
            check.bad_enums
        );
    }
    assert!(seen > 0, "no execdriver.v1 file in the descriptor set");
}

#[test]
fn the_check_sees_a_missing_comment() {
    // The checker itself: a descriptor with no comments is reported, element by element.
    let m = DescriptorProto {
        name: Some("Bare".into()),
        field: vec![prost_types::FieldDescriptorProto {
            name: Some("x".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut check = Check {
        locations: &[],
        missing: Vec::new(),
        bad_enums: Vec::new(),
    };
    check.message(&m, vec![FILE_MESSAGE, 0], "");
    assert_eq!(check.missing, ["message Bare", "field Bare.x"]);
}
