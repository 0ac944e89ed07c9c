//! The self-service pages, server-rendered HTML from maud templates compiled with the
//! program: every value is escaped (a `<script>` name shows as text), nothing runs in
//! the browser (the CSP admits no script), and every form works with the keyboard and a
//! screen reader (labels, one `main`, errors announced with `role="alert"`).
//!
//! "This account belongs to <display name> (<DN>)" stands above every form a signed-in
//! person sees, so nobody registers a name without seeing whose account takes it.

use maud::{html, Markup, DOCTYPE};

use super::sessions::Principal;
use crate::adapters::store::HeldName;

/// The stylesheet (`/style.css`): system fonts, contrast above WCAG AA, a visible focus.
pub const STYLESHEET: &str = include_str!("style.css");

/// Something to tell the person above the page's forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// What was done.
    Done(String),
    /// What was refused, and why.
    Refused(String),
}

/// The whole page around `body`.
fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · registrar" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header { p.brand { "registrar · IM name registration" } }
                main { (body) }
            }
        }
    }
}

fn notice(notice: Option<&Notice>) -> Markup {
    html! {
        @match notice {
            Some(Notice::Done(text)) => p.notice role="status" { (text) },
            Some(Notice::Refused(text)) => p.error role="alert" { (text) },
            None => {},
        }
    }
}

/// The sign-in form; `token` is its CSRF token.
pub fn sign_in(token: &str, login: &str, refused: Option<&str>) -> Markup {
    page(
        "Sign in",
        html! {
            h1 { "Sign in" }
            p { "Sign in with your directory login and password to see and register your IM names." }
            (notice(refused.map(|text| Notice::Refused(text.to_string())).as_ref()))
            form method="post" action="/sign-in" {
                input type="hidden" name="token" value=(token);
                p {
                    label for="login" { "Login" }
                    input #login type="text" name="login" value=(login) autocomplete="username"
                        required autofocus maxlength="256";
                }
                p {
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password"
                        maxlength="1024";
                }
                p { button type="submit" { "Sign in" } }
            }
        },
    )
}

/// What the account page shows.
pub struct AccountView<'a> {
    pub principal: &'a Principal,
    pub names: &'a [HeldName],
    pub protocols: &'a [String],
    pub max_per_account: u32,
    pub csrf: &'a str,
    pub notice: Option<Notice>,
    /// Sign-in is by the proxy's header: there is no sign-out.
    pub by_header: bool,
}

/// The account page: whose account it is, its names, and the forms.
pub fn account(view: &AccountView<'_>) -> Markup {
    let own = view.names.iter().filter(|n| n.source == "self").count();
    page(
        "Your IM names",
        html! {
            h1 { "Your IM names" }
            (belongs_to(view.principal))
            (notice(view.notice.as_ref()))
            @if view.names.is_empty() {
                p { "No IM name is registered to this account yet." }
            } @else {
                table {
                    caption { "IM names registered to this account" }
                    thead { tr { th scope="col" { "Protocol" } th scope="col" { "Name" } th scope="col" { "Registered by" } th scope="col" { span.hidden { "Action" } } } }
                    tbody {
                        @for name in view.names {
                            tr {
                                td { (name.protocol) }
                                td.name { (name.im_name) }
                                td { (origin(name)) }
                                td {
                                    @if name.source == "self" {
                                        form method="post" action="/remove" {
                                            input type="hidden" name="csrf" value=(view.csrf);
                                            input type="hidden" name="protocol" value=(name.protocol);
                                            input type="hidden" name="im_name" value=(name.im_name);
                                            button type="submit" aria-label={ "Remove " (name.protocol) " name " (name.im_name) } { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(rule) = &view.principal.protected {
                section.protected aria-labelledby="protected-heading" {
                    h2 #protected-heading { "No names can be registered to this account" }
                    p {
                        "This account is a protected principal (" (rule) "): a service account or "
                        "another account that must never hold an IM name. Sign in with your own "
                        "account to register names."
                    }
                }
            } @else {
                section aria-labelledby="register-heading" {
                    h2 #register-heading { "Register a name" }
                    p { "You may register up to " (view.max_per_account) " names yourself; you hold " (own) "." }
                    form method="post" action="/register" {
                        input type="hidden" name="csrf" value=(view.csrf);
                        p {
                            label for="protocol" { "Protocol" }
                            select #protocol name="protocol" {
                                @for protocol in view.protocols { option value=(protocol) { (protocol) } }
                            }
                        }
                        p {
                            label for="im_name" { "IM name" }
                            input #im_name type="text" name="im_name" required maxlength="256" autocomplete="off";
                        }
                        p { button type="submit" { "Register" } }
                    }
                }
            }
            @if !view.by_header {
                form.sign-out method="post" action="/sign-out" {
                    input type="hidden" name="csrf" value=(view.csrf);
                    button type="submit" { "Sign out" }
                }
            }
        },
    )
}

/// "This account belongs to <display name> (<DN>)".
fn belongs_to(principal: &Principal) -> Markup {
    html! {
        p.identity {
            "This account belongs to " strong { (principal.display_name) } " (" span.dn { (principal.dn) } ")"
        }
    }
}

fn origin(name: &HeldName) -> Markup {
    html! {
        @match (name.source.as_str(), &name.owner) {
            ("self", _) => "you",
            ("manual", _) => "an administrator",
            (_, Some(owner)) => { "the directory (mapping " (owner) ")" },
            (source, None) => (source),
        }
    }
}

/// A page that stops here: a lockout, a refusal, an error.
pub fn stop(title: &str, message: &str, link: Option<(&str, &str)>) -> Markup {
    page(
        title,
        html! {
            h1 { (title) }
            p.error role="alert" { (message) }
            @if let Some((href, text)) = link {
                p { a href=(href) { (text) } }
            }
        },
    )
}
