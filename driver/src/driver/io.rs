//! A container's stdio: attaching to its shim, resizing its terminal, closing its stdin, and
//! its log files.

use std::path::PathBuf;

use execdriver_proto as pb;
use execdriver_spec::protocol::{self, request, Empty, Target};
use execdriver_spec::state;

use super::Driver;
use crate::convert;
use crate::error::{Error, Result};
use crate::shims::{self, ShimConn};

impl Driver {
    /// Resizes the terminal of the container's init (or of an exec'd process).
    pub async fn resize(&self, id: &str, exec_id: &str, rows: u32, cols: u32) -> Result<()> {
        if rows == 0 || cols == 0 || rows > u16::MAX as u32 || cols > u16::MAX as u32 {
            return Err(Error::invalid("size", "rows and cols must be 1 to 65535"));
        }
        let c = self.get(id)?;
        convert::validate_exec_id(exec_id)?;
        let exec_id = exec_id.to_owned();
        self.call_running(
            &c,
            request::Kind::Resize(protocol::Resize {
                rows,
                cols,
                exec_id,
            }),
        )
        .await
        .map(drop)
    }

    /// Closes the stdin of the container's init (or of an exec'd process).
    pub async fn close_stdin(&self, id: &str, exec_id: &str) -> Result<()> {
        let c = self.get(id)?;
        convert::validate_exec_id(exec_id)?;
        self.call_running(
            &c,
            request::Kind::CloseStdin(Target {
                exec_id: exec_id.to_owned(),
            }),
        )
        .await
        .map(drop)
    }

    /// Reopens the container's log file.
    pub async fn reopen_log(&self, id: &str) -> Result<()> {
        let c = self.get(id)?;
        self.call_running(&c, request::Kind::ReopenLog(Empty {}))
            .await
            .map(drop)
    }

    /// The state directory of a container and the name of the log of its init (or of an
    /// exec'd process), for reading it.
    pub fn log_of(&self, id: &str, exec_id: &str) -> Result<(PathBuf, String)> {
        let c = self.get(id)?;
        convert::validate_exec_id(exec_id)?;
        if exec_id.is_empty() {
            return Ok((c.dir.clone(), state::LOG.to_owned()));
        }
        let name = execdriver_spec::state::exec_log_name(exec_id);
        if !c.dir.join(&name).exists() {
            return Err(Error::NotFound(format!("{id}/exec {exec_id}")));
        }
        Ok((c.dir.clone(), name))
    }

    /// Opens an attach stream to the container's shim.
    pub async fn attach(&self, start: &pb::AttachStart) -> Result<ShimConn> {
        let c = self.get(&start.id)?;
        let mut conn = match shims::connect_live(&c.dir).await? {
            Some(conn) => conn,
            None => {
                self.bury(&c).await;
                return Err(Error::FailedPrecondition(format!(
                    "container {} is stopped (its shim is gone)",
                    c.id
                )));
            }
        };
        convert::validate_exec_id(&start.exec_id)?;
        let attach = protocol::Attach {
            exec_id: start.exec_id.clone(),
            stdin: start.stdin,
            stdout: start.stdout,
            stderr: start.stderr,
        };
        tokio::time::timeout(
            shims::CALL_TIMEOUT,
            conn.call(request::Kind::Attach(attach)),
        )
        .await
        .map_err(|_| {
            Error::DeadlineExceeded(format!(
                "the shim of container {} did not answer within {:?}",
                c.id,
                shims::CALL_TIMEOUT
            ))
        })??;
        Ok(conn)
    }
}
