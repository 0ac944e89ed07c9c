//! The headers every response of `registrar`'s HTTP listeners carries, whatever route
//! made it: a Content Security Policy that admits no script at all and only the site's
//! own stylesheet, no framing, no referrer, no MIME sniffing, and no caching (pages show
//! a person's registrations; the API answers who holds a name). Under TLS, HSTS too.

use axum::http::header::{self, HeaderName, HeaderValue};
use axum::response::Response;

/// The policy: nothing runs, nothing loads but the site's own stylesheet and images, forms
/// post only to the site, and no other site may frame it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the guarding headers to `response` (`tls`: the listener serves TLS).
pub fn guard(mut response: Response, tls: bool) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::CACHE_CONTROL, "no-store");
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if tls {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    response
}

/// `router` with [`guard`] on every response, and request bodies refused past
/// `max_body` bytes (413).
pub fn guarded(router: axum::Router, tls: bool, max_body: usize) -> axum::Router {
    router
        .layer(axum::middleware::map_response(move |response| async move {
            guard(response, tls)
        }))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
}
