//! `registrar`'s one HTTP stack, axum on hyper and tokio, that `run --listen` and
//! `serve` share: [`listener`] serves a router (plain or TLS, bounded per connection),
//! [`guards`] puts the security headers on every response, [`health`] is the
//! controller's `/healthz`, `/livez` and `/metrics`. This file only declares.

pub mod guards;
pub mod health;
pub mod listener;
