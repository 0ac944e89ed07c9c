//! `registrar serve`: reads the config (working tree or `--rev`) and its `self_service`
//! section once, opens the store, reads the sign-in source's credentials and the API's
//! tokens file, then serves the site until SIGTERM or SIGINT. A change to the config
//! takes a restart, which signs everyone out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::api::Tokens;
use super::routes::site_routes;
use super::sessions::Sessions;
use super::site::{Counters, Directory, Site};
use super::throttle::Throttle;
use crate::adapters::store::Store;
use crate::app::clock::rfc3339;
use crate::app::context::{Context, Outcome};
use crate::app::error::AppError;
use crate::app::reading::{head_files, read_config};
use crate::app::sources::credentials;
use crate::app::web::{guards, listener};
use crate::config::SourceLocation;

/// `registrar serve`'s options.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// What the site's listener allows: enough connections for an IM system's lookups, each
/// request head within 10 s, each request answered within 30 s (a sign-in waits on the
/// directory at most that long).
const SITE_LIMITS: listener::Limits = listener::Limits {
    connections: 512,
    head_timeout: Duration::from_secs(10),
    request_timeout: Duration::from_secs(30),
};

/// The largest form a page posts (a name, a protocol, a token; a login and password).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// `registrar serve`.
pub fn serve_command(context: &Context, options: ServeOptions) -> Result<Outcome, AppError> {
    let files = head_files(context)?;
    let config = read_config(context, &files, "")?;
    let self_service = config.self_service.clone().ok_or(AppError::NoSelfService)?;
    let settings = match config.source(&self_service.source).map(|s| &s.location) {
        Some(SourceLocation::Ldap(settings)) => settings.clone(),
        _ => return Err(AppError::NoSelfService),
    };
    let credentials = credentials(&settings, &files).map_err(|error| AppError::Source {
        source_name: self_service.source.clone(),
        error: Box::new(error),
    })?;
    let tokens = match &self_service.api_tokens_file {
        Some(path) => Some(Arc::new(Tokens::read(path)?)),
        None => None,
    };
    let tls = match &options.tls {
        Some((certificate, key)) => Some(listener::tls_config(certificate, key)?),
        None => None,
    };
    let store = Store::open(&context.state)?;
    let site = Site {
        sessions: Arc::new(Sessions::new(self_service.idle_timeout)),
        directory: Arc::new(Directory {
            settings,
            credentials,
        }),
        self_service: Arc::new(self_service),
        config: Arc::new(config),
        store: Arc::new(Mutex::new(store)),
        throttle: Arc::new(Throttle::default()),
        tokens,
        counters: Arc::new(Counters::default()),
        tls: tls.is_some(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(AppError::Thread)?;
    let served = runtime.block_on(serve_site(site.clone(), context, options, tls));
    // The runtime goes first, with the clones of `site` its tasks held: the store is
    // closed here, outside it (a PostgreSQL client's close blocks on a runtime of its own).
    drop(runtime);
    drop(site);
    served
}

/// Binds and serves `site` until SIGTERM or SIGINT.
async fn serve_site(
    site: Site,
    context: &Context,
    options: ServeOptions,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Outcome, AppError> {
    let bound = listener::bind(options.listen).await?;
    let address = bound.local_addr().unwrap_or(options.listen);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let api = if site.tokens.is_some() {
        "on"
    } else {
        "off (no api_tokens_file)"
    };
    eprintln!(
        "{} registrar serve: listening on {scheme}://{address} (state {}; sign-in {}; lookup API {api})",
        rfc3339(chrono::Utc::now()),
        context.state,
        sign_in_method(&site),
    );
    let routes = guards::guarded(site_routes(site), tls.is_some(), MAX_FORM_BYTES);
    listener::serve(bound, tls, routes, SITE_LIMITS, stop_signal()).await;
    eprintln!("{} registrar serve: stopped", rfc3339(chrono::Utc::now()));
    Ok(Outcome::Success)
}

fn sign_in_method(site: &Site) -> String {
    match &site.self_service.trusted_header {
        Some(header) => format!(
            "by header {} from {} proxies",
            header.name,
            header.proxies.len()
        ),
        None => format!(
            "by LDAP bind against source {} ({})",
            site.self_service.source, site.self_service.login_attribute
        ),
    }
}

/// SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}
