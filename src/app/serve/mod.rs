//! `registrar serve`: the employees' self-registration page and the lookup API, on the
//! shared HTTP stack (`app/web/`). DESIGN.md, "Self-service", is the contract.
//!
//! The parts: [`command`] starts it; [`site`] is what requests share; [`identity`] proves
//! who asks (an LDAP bind as the person, or the trusted proxy's header; never a
//! fallback); [`sessions`] keeps who signed in (signed cookies, CSRF tokens, idle
//! timeout); [`throttle`] locks sign-in after failures; [`routes`] are the pages' and
//! the API's handlers; [`pages`] their HTML; [`api`] the lookup API and its tokens. This
//! file only declares and re-exports.
//!
//! It writes to the store only through `register_unmanaged` (which refuses protected
//! principals) and `Store::unregister_own` (which removes only the signed-in person's own
//! self registrations).

mod api;
mod command;
mod identity;
mod pages;
mod routes;
mod sessions;
mod site;
mod throttle;

pub use api::{Tokens, TokensFileError};
pub use command::{serve_command, ServeOptions};
pub use sessions::{cookie_value, Sessions};
