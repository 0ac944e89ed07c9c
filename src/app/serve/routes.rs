//! The routes of `registrar serve`: the self-service pages (`/`, `/sign-in`,
//! `/sign-out`, `/register`, `/remove`, `/style.css`), the lookup API, and `/livez`,
//! `/healthz`, `/metrics`.
//!
//! Every page but sign-in needs a principal ([`identity`](super::identity)); without one,
//! the sign-in page (or, behind a proxy, a refusal). Every form posts its CSRF token,
//! checked before anything changes. Every change is one store transaction with the serial,
//! recorded in the run history with who, when, what and the client address.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::Markup;
use serde::Deserialize;

use super::api;
use super::identity::{principal_from_header, sign_in_with_password, Refusal};
use super::pages::{self, AccountView, Notice};
use super::sessions::{cookie_value, same, Session, SESSION_COOKIE, SIGN_IN_COOKIE};
use super::site::Site;
use crate::adapters::ldap::Password;
use crate::adapters::store::{RunRecord, StoreError};
use crate::app::clock::now;
use crate::app::error::AppError;
use crate::app::register::{register_unmanaged, AllowProtected, UnmanagedRegistration};
use crate::app::web::health::{alive, prometheus, text};
use registrar_core::quote::quote_for_message;
use registrar_core::state::RegistrationSource;

/// Every route of the site over `site`.
/// Behind a proxy there is no sign-in form and no sign-out: the proxy signs people in.
pub fn site_routes(site: Site) -> Router {
    let by_form = site.self_service.trusted_header.is_none();
    let router = if by_form {
        Router::new()
            .route("/sign-in", get(sign_in_page).post(sign_in))
            .route("/sign-out", post(sign_out))
    } else {
        Router::new()
    };
    router
        .route("/", get(account_page))
        .route("/register", post(register))
        .route("/remove", post(remove))
        .route("/style.css", get(stylesheet))
        .route(
            "/api/v1/registrations/{protocol}/{im_name}",
            get(api::lookup),
        )
        .route("/livez", get(alive))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async { stop(StatusCode::NOT_FOUND, "Not found", "There is no such page.") })
        .with_state(site)
}

/// A page that stops here, with its status.
fn stop(code: StatusCode, title: &str, message: &str) -> Response {
    let link = (code != StatusCode::NOT_FOUND).then_some(("/", "Back to your IM names"));
    (code, html(pages::stop(title, message, link))).into_response()
}

fn html(markup: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A `Set-Cookie` value for `name` on `path`: `HttpOnly`, `SameSite=Strict`, `Secure`
/// under TLS; `max_age` `Some(0)` deletes it.
fn cookie(site: &Site, name: &str, value: &str, path: &str, max_age: Option<u32>) -> HeaderValue {
    let secure = if site.tls { "; Secure" } else { "" };
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict{secure}{age}"
    ))
    .expect("cookie values are base64url")
}

fn cookie_in<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| cookie_value(value, name))
}

/// The request's session, or the response that stands instead: the sign-in page's
/// redirect, or, behind a proxy, a refusal. A proxy's principal gets a session of its
/// own on first sight (the `Set-Cookie` to send), so that its forms carry a token too.
async fn session_of(
    site: &Site,
    headers: &HeaderMap,
    address: SocketAddr,
) -> Result<(Session, Option<HeaderValue>), Response> {
    let now = Instant::now();
    let resumed = cookie_in(headers, SESSION_COOKIE).and_then(|c| site.sessions.resume(c, now));
    if site.self_service.trusted_header.is_none() {
        return resumed
            .map(|session| (session, None))
            .ok_or_else(|| Redirect::to("/sign-in").into_response());
    }
    let principal = match principal_from_header(site, headers, address.ip()).await {
        Ok(principal) => principal,
        Err(refusal) => return Err(refused(&refusal)),
    };
    if let Some(session) = resumed.filter(|s| s.principal == principal) {
        return Ok((session, None));
    }
    let Some(value) = site.sessions.start(principal, now) else {
        return Err(busy());
    };
    let session = site.sessions.resume(&value, now).ok_or_else(busy)?;
    Ok((
        session,
        Some(cookie(site, SESSION_COOKIE, &value, "/", None)),
    ))
}

fn busy() -> Response {
    stop(
        StatusCode::SERVICE_UNAVAILABLE,
        "Too many sessions",
        "Too many people are signed in right now. Try again in a few minutes.",
    )
}

/// The page for a sign-in that proved nobody.
fn refused(refusal: &Refusal) -> Response {
    let (code, title, message) = refusal_text(refusal);
    stop(code, title, &message)
}

/// A refusal's status, title and message: the whole page's, or (a wrong or empty
/// password) the sign-in form's.
fn refusal_text(refusal: &Refusal) -> (StatusCode, &'static str, String) {
    let (code, title, message) = match refusal {
        Refusal::Locked(left) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "Sign-in locked",
                format!(
                    "Too many failed sign-ins for this login or from this address. Sign-in \
                     is locked for {} more minutes.",
                    left.as_secs().div_ceil(60)
                ),
            )
        }
        Refusal::EmptyPassword => (
            StatusCode::UNAUTHORIZED,
            "Password required",
            "Enter your password: an empty one proves nobody.",
        ),
        Refusal::WrongCredentials => (
            StatusCode::UNAUTHORIZED,
            "Sign-in failed",
            "Wrong login or password.",
        ),
        Refusal::DirectoryDown => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Directory unavailable",
            "The directory cannot be reached right now; try again in a few minutes.",
        ),
        Refusal::UntrustedSender => (
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This site accepts requests only through its sign-in proxy.",
        ),
        Refusal::NoIdentity => (
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "The sign-in proxy named no account this directory knows.",
        ),
    };
    (code, title, message.to_string())
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

/// `GET /`: the account page.
async fn account_page(
    State(site): State<Site>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    Query(done): Query<Done>,
    headers: HeaderMap,
) -> Response {
    let (session, set_cookie) = match session_of(&site, &headers, address).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let notice = match done.done.as_deref() {
        Some("registered") => Some(Notice::Done("Registered.".to_string())),
        Some("removed") => Some(Notice::Done("Removed.".to_string())),
        _ => None,
    };
    let mut response = render_account(&site, &session, notice, StatusCode::OK).await;
    if let Some(value) = set_cookie {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The account page for `session`, with `notice`, answered with `code`.
async fn render_account(
    site: &Site,
    session: &Session,
    notice: Option<Notice>,
    code: StatusCode,
) -> Response {
    let dn = session.principal.dn.clone();
    let names = site
        .with_store(move |store| store.names_of_account(&dn))
        .await;
    let names = match names {
        Some(Ok(names)) => names,
        Some(Err(error)) => return store_down(&error),
        None => {
            return stop(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "The page failed.",
            )
        }
    };
    let view = AccountView {
        principal: &session.principal,
        names: &names,
        protocols: &site.self_service.protocols,
        max_per_account: site.self_service.max_per_account,
        csrf: &session.csrf,
        notice,
        by_header: site.self_service.trusted_header.is_some(),
    };
    (code, html(pages::account(&view))).into_response()
}

fn store_down(error: &dyn std::fmt::Display) -> Response {
    eprintln!("registrar serve: the store: {error}");
    stop(
        StatusCode::SERVICE_UNAVAILABLE,
        "Store unavailable",
        "The registration store cannot be reached right now; nothing was changed.",
    )
}

/// `GET /sign-in`: the form, with a fresh nonce cookie and its token.
async fn sign_in_page(State(site): State<Site>) -> Response {
    sign_in_form(&site, "", None, StatusCode::OK)
}

fn sign_in_form(site: &Site, login: &str, refused: Option<&str>, code: StatusCode) -> Response {
    let (nonce, token) = site.sessions.sign_in_form(Instant::now());
    let mut response = (code, html(pages::sign_in(&token, login, refused))).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(site, SIGN_IN_COOKIE, &nonce, "/sign-in", Some(3600)),
    );
    response
}

/// The sign-in form's fields. No `Debug`: it holds a password.
#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

/// `POST /sign-in`.
async fn sign_in(
    State(site): State<Site>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let nonce = cookie_in(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if !site
        .sessions
        .sign_in_token_matches(nonce, &form.token, Instant::now())
    {
        return sign_in_form(
            &site,
            "",
            Some("This form expired or did not come from this site; sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    let login = form.login.trim().to_string();
    if login.is_empty() {
        return sign_in_form(
            &site,
            "",
            Some("Enter your login."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let password = Password::new(form.password);
    let principal = match sign_in_with_password(&site, &login, password, address.ip()).await {
        Ok(principal) => principal,
        // Told on the form itself, so the person can try again.
        Err(refusal @ (Refusal::EmptyPassword | Refusal::WrongCredentials)) => {
            let (code, _, message) = refusal_text(&refusal);
            return sign_in_form(&site, &login, Some(&message), code);
        }
        Err(other) => return refused(&other),
    };
    let Some(value) = site.sessions.start(principal, Instant::now()) else {
        return busy();
    };
    let mut response = Redirect::to("/").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookie(&site, SESSION_COOKIE, &value, "/", None),
    );
    headers.append(
        header::SET_COOKIE,
        cookie(&site, SIGN_IN_COOKIE, "", "/sign-in", Some(0)),
    );
    response
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
}

/// The session of a form's request, its CSRF token checked.
async fn form_session(
    site: &Site,
    headers: &HeaderMap,
    address: SocketAddr,
    csrf: &str,
) -> Result<Session, Response> {
    let (session, _) = session_of(site, headers, address).await?;
    if !same(&session.csrf, csrf) {
        site.counters.count(&site.counters.refusals);
        return Err(stop(
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form expired or did not come from this site; nothing was changed. Reload the page and try again.",
        ));
    }
    Ok(session)
}

/// `POST /sign-out`.
async fn sign_out(
    State(site): State<Site>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if let Err(response) = form_session(&site, &headers, address, &form.csrf).await {
        return response;
    }
    if let Some(value) = cookie_in(&headers, SESSION_COOKIE) {
        site.sessions.end(value);
    }
    let mut response = Redirect::to("/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&site, SESSION_COOKIE, "", "/", Some(0)),
    );
    response
}

#[derive(Deserialize)]
struct NameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    im_name: String,
}

/// `POST /register`.
async fn register(
    State(site): State<Site>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<NameForm>,
) -> Response {
    let session = match form_session(&site, &headers, address, &form.csrf).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let refuse = |code: StatusCode, why: String| {
        site.counters.count(&site.counters.refusals);
        render_account(&site, &session, Some(Notice::Refused(why)), code)
    };
    if let Some(rule) = &session.principal.protected {
        return refuse(StatusCode::FORBIDDEN, protected_refusal(rule)).await;
    }
    let protocol = form.protocol.trim().to_ascii_lowercase();
    if !site.self_service.protocols.contains(&protocol) {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "Names for {} cannot be registered here.",
                quote_for_message(&protocol)
            ),
        )
        .await;
    }
    let im_name = form.im_name.trim().to_string();
    if let Some(why) = name_refusal(&site, &protocol, &im_name) {
        return refuse(StatusCode::BAD_REQUEST, why).await;
    }
    let run = change_record(
        "serve register",
        "registered",
        &session,
        &protocol,
        &im_name,
        address,
    );
    let (config, dn) = (site.config.clone(), session.principal.dn.clone());
    let limit = site.self_service.max_per_account;
    let (protocol_key, name) = (protocol.clone(), im_name.clone());
    let written = site
        .with_store(move |store| {
            let registration = UnmanagedRegistration {
                protocol: &protocol_key,
                im_name: &name,
                account_dn: &dn,
                source: RegistrationSource::SelfService,
                per_account: Some(limit),
            };
            register_unmanaged(&config, store, registration, AllowProtected::Refuse, run)
        })
        .await;
    match written {
        Some(Ok(_)) => {
            site.counters.count(&site.counters.registrations);
            Redirect::to("/?done=registered").into_response()
        }
        Some(Err(AppError::Store(StoreError::AlreadyRegistered { .. }))) => {
            refuse(
                StatusCode::CONFLICT,
                format!("The {protocol} name {} is already taken.", quote_for_message(&im_name)),
            )
            .await
        }
        Some(Err(AppError::Store(StoreError::RegistrationLimit { limit, .. }))) => {
            refuse(
                StatusCode::CONFLICT,
                format!("You already hold {limit} names you registered yourself, the most allowed. Remove one first."),
            )
            .await
        }
        Some(Err(AppError::ProtectedPrincipal { rule, .. })) => {
            refuse(StatusCode::FORBIDDEN, protected_refusal(&rule)).await
        }
        Some(Err(error)) => store_down(&error),
        None => stop(StatusCode::INTERNAL_SERVER_ERROR, "Error", "The registration failed; nothing was recorded."),
    }
}

/// Why nothing may be registered to a protected principal's account (`rule` says which
/// rule protects it): the page's refusal, whether the page or the store refused.
fn protected_refusal(rule: &str) -> String {
    format!("This account is a protected principal ({rule}): no name may be registered to it.")
}

/// Why `im_name` cannot be registered on `protocol`, if it cannot: the protocol's name
/// rules, or an exclusion that reserves it.
fn name_refusal(site: &Site, protocol: &str, im_name: &str) -> Option<String> {
    if im_name.is_empty() {
        return Some("Enter the name to register.".to_string());
    }
    let rules = &site.config.rules;
    if let Some(problem) = rules.protocol(protocol).problem_with(im_name) {
        return Some(format!(
            "The {protocol} name {} {problem}.",
            quote_for_message(im_name)
        ));
    }
    if rules
        .exclusions
        .iter()
        .any(|exclusion| exclusion.freezes_registration(protocol, im_name))
    {
        return Some(format!(
            "The {protocol} name {} is reserved.",
            quote_for_message(im_name)
        ));
    }
    None
}

/// The run history's record of one change made on the page: who (DN and login), what,
/// and from which address; the store adds the serials, the record has the time.
fn change_record(
    command: &str,
    verb: &str,
    session: &Session,
    protocol: &str,
    im_name: &str,
    address: SocketAddr,
) -> RunRecord {
    let principal = &session.principal;
    let at = now();
    let mut run = RunRecord::new(command, at.clone());
    run.finished_at = at;
    if verb == "registered" {
        run.added = 1;
    } else {
        run.removed = 1;
    }
    run.message = Some(format!(
        "{protocol} name {} {verb} by {} (signed in as {}) from {}",
        quote_for_message(im_name),
        principal.dn,
        quote_for_message(&principal.login),
        address.ip()
    ));
    run
}

/// `POST /remove`: removes one of the person's own self registrations.
async fn remove(
    State(site): State<Site>,
    ConnectInfo(address): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<NameForm>,
) -> Response {
    let session = match form_session(&site, &headers, address, &form.csrf).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let protocol = form.protocol.trim().to_ascii_lowercase();
    let im_name = form.im_name.trim().to_string();
    let name_key = site.config.rules.protocol(&protocol).name_key(&im_name);
    let run = change_record(
        "serve remove",
        "removed",
        &session,
        &protocol,
        &im_name,
        address,
    );
    let dn = session.principal.dn.clone();
    let key = protocol.clone();
    let removed = site
        .with_store(move |store| store.unregister_own((&key, &name_key), &dn, run))
        .await;
    match removed {
        Some(Ok(())) => {
            site.counters.count(&site.counters.removals);
            Redirect::to("/?done=removed").into_response()
        }
        Some(Err(StoreError::NotOwnRegistration { .. })) => {
            site.counters.count(&site.counters.refusals);
            let why = format!(
                "The {protocol} name {} is not one you registered yourself; nothing was removed.",
                quote_for_message(&im_name)
            );
            render_account(
                &site,
                &session,
                Some(Notice::Refused(why)),
                StatusCode::CONFLICT,
            )
            .await
        }
        Some(Err(error)) => store_down(&error),
        None => stop(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "The removal failed; nothing was removed.",
        ),
    }
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::STYLESHEET,
    )
        .into_response()
}

/// `GET /healthz`: the store answers.
async fn healthz(State(site): State<Site>) -> Response {
    let serial = site.with_store(|store| store.serial()).await;
    match serial {
        Some(Ok(_)) => text(StatusCode::OK, "ok\n".to_string()),
        Some(Err(error)) => {
            // The cause (a path, a server) is for the log, not for whoever asks.
            eprintln!("registrar serve: /healthz: {error}");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "store unavailable\n".to_string(),
            )
        }
        None => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "store: the check failed\n".to_string(),
        ),
    }
}

async fn metrics(State(site): State<Site>) -> Response {
    prometheus(format!("registrar_up 1\n{}", site.counters.prometheus()))
}
