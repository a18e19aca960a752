//! The request checks every conversion shares: ids, strings, list lengths, absolute paths.
//! Each takes the request field's name from its caller, which knows it.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The longest id accepted (Docker's ids are 64 hex digits).
pub const MAX_ID: usize = 64;
pub(super) const MAX_LIST: usize = 4096;
pub(super) const MAX_MOUNTS: usize = 256;
pub(super) const MAX_LABELS: usize = 256;
pub(super) const MAX_LABEL_KEY: usize = 256;
pub(super) const MAX_LABEL_VALUE: usize = 4096;
pub(super) const MAX_STRING: usize = 64 * 1024;

/// Checks a container id: 1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid("id", "missing"));
    }
    if id.len() > MAX_ID {
        return Err(Error::invalid(
            "id",
            format!("{} characters; at most {MAX_ID}", id.chars().count()),
        ));
    }
    let first_ok = id.as_bytes()[0].is_ascii_alphanumeric();
    if !first_ok
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(Error::invalid(
            "id",
            format!(
                "{id:?} must be letters, digits, '_', '.', '-', starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_string(field: &str, s: &str) -> Result<()> {
    if s.len() > MAX_STRING {
        return Err(Error::invalid(
            field,
            format!("longer than {MAX_STRING} bytes"),
        ));
    }
    if s.contains('\0') {
        return Err(Error::invalid(field, "contains a NUL byte"));
    }
    Ok(())
}

pub(super) fn check_list(field: &str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::invalid(
            field,
            format!("{len} entries; at most {max}"),
        ));
    }
    Ok(())
}

pub(super) fn absolute(field: &str, s: &str) -> Result<PathBuf> {
    check_string(field, s)?;
    if s.is_empty() {
        return Err(Error::invalid(field, "missing"));
    }
    let p = PathBuf::from(s);
    if !p.is_absolute() {
        return Err(Error::invalid(
            field,
            format!("{s:?} is not an absolute path"),
        ));
    }
    Ok(p)
}
