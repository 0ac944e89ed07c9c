//! Serving an axum [`Router`] on a TCP listener, plain or under TLS: the one HTTP
//! implementation of `registrar` (`run --listen` and `serve` both go through [`serve`]).
//!
//! What a hostile or slow client can cost is bounded here, before any route runs: at
//! most [`Limits::connections`] connections are served at once (more wait in the
//! kernel's backlog), a TLS handshake and every request head must arrive within
//! [`Limits::head_timeout`], a request head may not exceed [`MAX_HEAD_BYTES`], and a
//! request (its body read and its answer made) gets [`Limits::request_timeout`], then a
//! 408 and the connection closed, so a body sent a byte at a time holds no connection
//! for long. Each
//! request carries its client's address as axum's [`ConnectInfo`], the address the
//! connection came from (never a header's word).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

use crate::app::error::AppError;

/// The largest request head read (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// What one listener allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub connections: usize,
    /// How long a client has for its TLS handshake, and for each request head.
    pub head_timeout: Duration,
    /// How long one request may take from its head to its answer.
    pub request_timeout: Duration,
}

/// Binds the listener (port 0 picks a free port; [`TcpListener::local_addr`] tells).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(address)
        .await
        .map_err(|error| AppError::Listen { address, error })
}

/// Why the TLS certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct TlsFileError {
    pub path: std::path::PathBuf,
    pub reason: String,
}

/// The server's TLS configuration from a PEM certificate chain and a PEM private key
/// (rustls with ring; HTTP/1.1 only).
pub fn tls_config(
    certificate: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsFileError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |path: &Path, reason: String| TlsFileError {
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .map_err(|e| fail(certificate, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(certificate, format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(fail(certificate, "holds no PEM certificate".to_string()));
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| fail(key, format!("no usable PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(certificate, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| fail(key, format!("does not go with the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` until `stop` completes; then it accepts no more
/// connections and returns (connections still open end with the runtime). With `tls`,
/// every connection is TLS.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.connections));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (router, acceptor) = (router.clone(), acceptor.clone());
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(stream, peer, router, limits).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.head_timeout, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = handshake {
                        serve_connection(stream, peer, router, limits).await;
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Serves one connection's requests (HTTP/1.1, kept alive) until the client closes it.
async fn serve_connection<S>(stream: S, peer: SocketAddr, router: Router, limits: Limits)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let answer = router.clone().call(request);
        async move {
            match tokio::time::timeout(limits.request_timeout, answer).await {
                Ok(answered) => answered,
                Err(_) => Ok(timed_out()),
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The answer to a request that took longer than [`Limits::request_timeout`].
fn timed_out() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::REQUEST_TIMEOUT,
        [
            (axum::http::header::CONNECTION, "close"),
            (
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            ),
        ],
        "the request took too long\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A listener on loopback whose one route echoes the posted body's length, with
    /// `limits`; its address.
    async fn start(limits: Limits) -> SocketAddr {
        let router = Router::new().route(
            "/",
            axum::routing::post(|body: String| async move { body.len().to_string() }),
        );
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            None,
            router,
            limits,
            std::future::pending(),
        ));
        address
    }

    async fn exchange(address: SocketAddr, request: &[u8]) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    const LIMITS: Limits = Limits {
        connections: 4,
        head_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(300),
    };

    #[tokio::test]
    async fn a_request_is_answered_and_a_dribbled_body_or_head_is_cut_off() {
        let address = start(LIMITS).await;
        let whole = exchange(
            address,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        )
        .await;
        assert!(
            whole.starts_with("HTTP/1.1 200 OK\r\n") && whole.ends_with("\r\n\r\n5"),
            "{whole}"
        );
        // A body that never finishes: 408 once the request's time is up.
        let slow_body = exchange(
            address,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly this",
        )
        .await;
        assert!(slow_body.starts_with("HTTP/1.1 408 "), "{slow_body}");
        // A head that never finishes: the connection is closed.
        let slow_head = exchange(address, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        assert!(!slow_head.contains(" 200 "), "{slow_head}");
    }

    #[tokio::test]
    async fn a_head_past_the_limit_is_refused() {
        let address = start(LIMITS).await;
        let long = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES * 2)
        );
        let answer = exchange(address, long.as_bytes()).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431 "),
            "{answer}"
        );
    }
}
