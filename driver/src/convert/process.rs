//! A request's processes: the container's `process` and Exec requests (ids, timeouts).

use execdriver_proto as pb;
use execdriver_spec::config::User;

use super::checks::{absolute, check_list, check_string, validate_id, MAX_LIST};
use crate::error::{Error, Result};

/// A request's `Process`, checked.
#[derive(Debug, Clone)]
pub struct ProcessParts {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub tty: bool,
    pub open_stdin: bool,
    /// (rows, cols); 24x80 unless given.
    pub console_size: (u16, u16),
}

/// Checks a `Process` message; `field` is its path in the request (`process`).
pub fn process(field: &str, p: Option<&pb::Process>) -> Result<ProcessParts> {
    let Some(p) = p else {
        return Err(Error::invalid(field, "missing"));
    };
    check_list(&format!("{field}.args"), p.args.len(), MAX_LIST)?;
    if p.args.is_empty() {
        return Err(Error::invalid(
            format!("{field}.args"),
            "empty: a command is required",
        ));
    }
    for (i, a) in p.args.iter().enumerate() {
        check_string(&format!("{field}.args[{i}]"), a)?;
    }
    if p.args[0].is_empty() {
        return Err(Error::invalid(format!("{field}.args[0]"), "empty command"));
    }
    check_list(&format!("{field}.env"), p.env.len(), MAX_LIST)?;
    for (i, e) in p.env.iter().enumerate() {
        let f = format!("{field}.env[{i}]");
        check_string(&f, e)?;
        if e.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
            return Err(Error::invalid(f, "must be KEY=VALUE"));
        }
    }
    if !p.cwd.is_empty() {
        let cwd = absolute(&format!("{field}.cwd"), &p.cwd)?;
        if cwd
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(Error::invalid(format!("{field}.cwd"), "contains '..'"));
        }
    }
    check_string(&format!("{field}.user"), &p.user)?;
    User::parse(&p.user).map_err(|r| Error::invalid(format!("{field}.user"), r))?;
    let console_size = match (&p.console_size, p.tty) {
        (Some(_), false) => {
            return Err(Error::invalid(format!("{field}.console_size"), "needs tty"))
        }
        (Some(c), true) => {
            if c.rows == 0 || c.cols == 0 || c.rows > u16::MAX as u32 || c.cols > u16::MAX as u32 {
                return Err(Error::invalid(
                    format!("{field}.console_size"),
                    "rows and cols must be 1 to 65535",
                ));
            }
            (c.rows as u16, c.cols as u16)
        }
        (None, _) => (24, 80),
    };
    Ok(ProcessParts {
        args: p.args.clone(),
        env: p.env.clone(),
        cwd: p.cwd.clone(),
        user: p.user.clone(),
        tty: p.tty,
        open_stdin: p.open_stdin,
        console_size,
    })
}

/// A random id for an exec'd process the request did not name.
pub fn generate_exec_id() -> Result<String> {
    let hex = execdriver_spec::id::random_hex::<6>().map_err(Error::io("generating an exec id"))?;
    Ok(format!("exec-{hex}"))
}

/// Checks an Exec request; returns the shim's spec for it (with its exec id).
pub fn exec_request(req: &pb::ExecRequest) -> Result<execdriver_spec::protocol::ExecSpec> {
    validate_id(&req.id)?;
    let exec_id = if req.exec_id.is_empty() {
        generate_exec_id()?
    } else {
        req.exec_id.clone()
    };
    validate_id(&exec_id).map_err(|e| match e {
        Error::InvalidArgument { reason, .. } => Error::invalid("exec_id", reason),
        e => e,
    })?;
    let p = process("process", req.process.as_ref())?;
    Ok(execdriver_spec::protocol::ExecSpec {
        exec_id,
        args: p.args,
        env: p.env,
        cwd: p.cwd,
        user: p.user,
        tty: p.tty,
        stdin: p.open_stdin,
        rows: if p.tty { p.console_size.0 as u32 } else { 0 },
        cols: if p.tty { p.console_size.1 as u32 } else { 0 },
    })
}

/// Checks an exec id given with a container id (empty: the init).
pub fn validate_exec_id(exec_id: &str) -> Result<()> {
    if exec_id.is_empty() {
        return Ok(());
    }
    validate_id(exec_id).map_err(|e| match e {
        Error::InvalidArgument { reason, .. } => Error::invalid("exec_id", reason),
        e => e,
    })
}

/// A timeout in seconds from a request: 0 means `default`; above `max` is refused.
pub fn timeout_seconds(
    field: &str,
    value: u32,
    default: u32,
    max: u32,
) -> Result<std::time::Duration> {
    if value > max {
        return Err(Error::invalid(
            field,
            format!("{value} seconds; at most {max}"),
        ));
    }
    let secs = if value == 0 { default } else { value };
    Ok(std::time::Duration::from_secs(secs as u64))
}
