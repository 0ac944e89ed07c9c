//! The controller's health and metrics listener: a minimal HTTP/1.1 responder on tokio
//! for three read-only paths, `/healthz`, `/livez` and `/metrics` (anything else is
//! 404, any method but GET and HEAD 405). One request per connection, answered and
//! closed; a request head must arrive within [`READ_TIMEOUT`] and fit in
//! [`MAX_HEAD`] bytes, and at most [`MAX_CONNECTIONS`] are served at once, so a slow
//! or hostile client cannot starve the controller.
//!
//! It only reads [`Telemetry`]; it never touches the store, the repository or a
//! directory, and it does not authenticate: it listens on loopback unless told
//! otherwise, and what it shows (counts, schedule names, error messages without
//! passwords) is what `registrar status` shows.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::telemetry::Telemetry;
use crate::app::error::AppError;

/// How long a client has to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 16;

/// Binds the listener (port 0 picks a free port; [`TcpListener::local_addr`] tells).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(address)
        .await
        .map_err(|error| AppError::Listen { address, error })
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, telemetry: Arc<Mutex<Telemetry>>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let telemetry = telemetry.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(READ_TIMEOUT * 2, answer(stream, &telemetry)).await;
            drop(permit);
        });
    }
}

/// Reads one request head and writes the answer.
async fn answer(mut stream: TcpStream, telemetry: &Mutex<Telemetry>) -> std::io::Result<()> {
    let Some(head) = read_head(&mut stream).await? else {
        return Ok(());
    };
    let response = respond(&head, telemetry);
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// The request head (up to the blank line), or `None` when the client sent nothing
/// in time.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            let n = stream.read(&mut buffer).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            head.extend_from_slice(&buffer[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n")
                || head.windows(2).any(|w| w == b"\n\n")
                || head.len() >= MAX_HEAD
            {
                return Ok(());
            }
        }
    })
    .await;
    match read {
        Ok(Ok(())) if !head.is_empty() => Ok(Some(head)),
        Ok(Ok(())) | Err(_) => Ok(None),
        Ok(Err(e)) => Err(e),
    }
}

/// The whole HTTP response to the request `head` (the bytes up to the blank line, at
/// most [`MAX_HEAD`], whatever the client sent). Public for the fuzzing harness (`fuzz/`).
pub fn respond(head: &[u8], telemetry: &Mutex<Telemetry>) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut parts = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split(['?', '#']).next().unwrap_or("");
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return response(
            405,
            "Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET and HEAD\n",
            &[("Allow", "GET, HEAD")],
            false,
        );
    }
    let telemetry = telemetry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match path {
        "/healthz" => {
            let (healthy, body) = telemetry.health();
            let (code, reason) = if healthy {
                (200, "OK")
            } else {
                (503, "Service Unavailable")
            };
            response(
                code,
                reason,
                "text/plain; charset=utf-8",
                &body,
                &[],
                head_only,
            )
        }
        "/livez" => response(
            200,
            "OK",
            "text/plain; charset=utf-8",
            "alive\n",
            &[],
            head_only,
        ),
        "/metrics" => {
            let body = telemetry.prometheus(chrono::Utc::now());
            response(
                200,
                "OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
                &[],
                head_only,
            )
        }
        _ => response(
            404,
            "Not Found",
            "text/plain; charset=utf-8",
            "not found: try /healthz, /livez or /metrics\n",
            &[],
            head_only,
        ),
    }
}

fn response(
    code: u16,
    reason: &str,
    content_type: &str,
    body: &str,
    extra: &[(&str, &str)],
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(request: &str) -> String {
        let telemetry = Mutex::new(Telemetry::new(None));
        String::from_utf8(respond(request.as_bytes(), &telemetry)).unwrap()
    }

    #[test]
    fn answers_the_three_paths_and_refuses_the_rest() {
        let health = ask("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
        assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
        assert!(health.contains("Content-Length: 3\r\n"), "{health}");
        let metrics = ask("GET /metrics?x=1 HTTP/1.1\r\n\r\n");
        assert!(metrics.contains("version=0.0.4"), "{metrics}");
        assert!(metrics.contains("\nregistrar_up 1\n"), "{metrics}");
        let head = ask("HEAD /livez HTTP/1.1\r\n\r\n");
        assert!(
            head.ends_with("\r\n\r\n") && head.contains("Content-Length: 6"),
            "{head}"
        );
        assert!(ask("GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        let post = ask("POST /healthz HTTP/1.1\r\n\r\n");
        assert!(
            post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET, HEAD"),
            "{post}"
        );
        assert!(ask("garbage").starts_with("HTTP/1.1 405 "));
    }
}
