//! Attaching to a container's (or exec'd process's) stdio: streaming it to ours (with stdin,
//! raw mode and window size for a terminal), or as JSON lines; and passing our SIGINT and
//! SIGTERM on to the container.

use execdriver_proto as pb;
use tokio::io::AsyncReadExt;

use crate::client::{st, status, Client, Failure};
use crate::output::{exit_json, RawOut};
use crate::terminal::{terminal_size, RawMode};

/// Streams a container's output to ours until it ends; returns its exit status.
pub async fn attach_and_stream(
    client: &mut Client,
    id: &str,
    exec_id: &str,
    stdin: bool,
    tty: bool,
    start_after_attach: bool,
) -> Result<pb::ExitStatus, Failure> {
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(16);
    let start = pb::AttachStart {
        id: id.to_owned(),
        exec_id: exec_id.to_owned(),
        stdin,
        stdout: true,
        stderr: true,
    };
    tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Start(start)),
    })
    .await
    .map_err(|e| Failure::new(e.to_string()))?;
    let mut stream = client
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(status)?
        .into_inner();
    if stdin {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut input = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let close = pb::attach_request::Kind::CloseStdin(pb::CloseStdin {});
                        let _ = tx.send(pb::AttachRequest { kind: Some(close) }).await;
                        break;
                    }
                    Ok(n) => {
                        let data = pb::attach_request::Kind::Stdin(buf[..n].to_vec());
                        if tx
                            .send(pb::AttachRequest { kind: Some(data) })
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
    }
    // With a terminal on both sides: raw mode here, and our window size follows to theirs.
    let _raw = if tty && stdin { RawMode::enter() } else { None };
    if tty {
        if let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                while winch.recv().await.is_some() {
                    let Some(size) = terminal_size() else {
                        continue;
                    };
                    let msg = pb::AttachRequest {
                        kind: Some(pb::attach_request::Kind::Resize(size)),
                    };
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
    if start_after_attach {
        st(client
            .start(pb::StartRequest {
                id: id.to_owned(),
                exec_id: exec_id.to_owned(),
            })
            .await)?;
    }
    let mut out = RawOut::stdout();
    let mut err = RawOut::stderr();
    loop {
        let msg = stream.message().await.map_err(status)?;
        let Some(msg) = msg else {
            return Err(Failure::new(
                "the attach stream ended without an exit status",
            ));
        };
        match msg.kind {
            Some(pb::attach_response::Kind::Output(chunk)) => {
                if chunk.stream == pb::Stream::Stderr as i32 {
                    let _ = err.write_all(&chunk.data);
                } else {
                    let _ = out.write_all(&chunk.data);
                }
            }
            Some(pb::attach_response::Kind::Exit(e)) => {
                drop(tx);
                return Ok(e);
            }
            None => {}
        }
    }
}

/// Attaches (and with `start`, starts) and prints each chunk of output, then the exit, as one
/// JSON object per line.
pub async fn attach_json(
    client: &mut Client,
    id: &str,
    exec_id: &str,
    start: bool,
) -> Result<pb::ExitStatus, Failure> {
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AttachRequest>(1);
    let msg = pb::AttachStart {
        id: id.to_owned(),
        exec_id: exec_id.to_owned(),
        stdin: false,
        stdout: true,
        stderr: true,
    };
    tx.send(pb::AttachRequest {
        kind: Some(pb::attach_request::Kind::Start(msg)),
    })
    .await
    .map_err(|e| Failure::new(e.to_string()))?;
    let mut stream = st(client
        .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await)?;
    if start {
        st(client
            .start(pb::StartRequest {
                id: id.to_owned(),
                exec_id: exec_id.to_owned(),
            })
            .await)?;
    }
    while let Some(msg) = stream.message().await.map_err(status)? {
        match msg.kind {
            Some(pb::attach_response::Kind::Output(c)) => println!(
                "{}",
                serde_json::json!({
                    "stream": if c.stream == pb::Stream::Stderr as i32 { "stderr" } else { "stdout" },
                    "data": String::from_utf8_lossy(&c.data),
                })
            ),
            Some(pb::attach_response::Kind::Exit(e)) => {
                println!("{}", serde_json::json!({ "exit": exit_json(&e) }));
                drop(tx);
                return Ok(e);
            }
            None => {}
        }
    }
    Err(Failure::new(
        "the attach stream ended without an exit status",
    ))
}

/// Forwards SIGINT and SIGTERM received by this client to the container (like `docker run`).
pub fn proxy_signals(client: Client, id: String) {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, num) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
    ] {
        let Ok(mut sig) = signal(kind) else { continue };
        let mut client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            while sig.recv().await.is_some() {
                let _ = client
                    .kill(pb::KillRequest {
                        exec_id: String::new(),
                        id: id.clone(),
                        signal: num,
                        all: false,
                    })
                    .await;
            }
        });
    }
}
