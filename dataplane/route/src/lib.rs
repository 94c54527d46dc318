//! `weir-route`: which route takes a request, and what the route does to it before it goes upstream.
//!
//! Everything here is compiled once per core per config generation from the validated config
//! (`weir_config::RouteMatch`, `Rewrite`, `Redirect`) and then only read on the request path:
//!
//! - [`RouteMatcher`]: one route's conditions (host exact or `*.suffix`, path exact / prefix / regex,
//!   methods, headers, query parameters), checked cheapest first.
//! - [`RouteTable`]: a listener's routes in order, first match wins; [`RouteTable::find`] normalizes
//!   the host once per lookup without allocating and narrows the routes to try with a host index.
//! - [`Rewriter`]: the route's path-prefix or path-regex rewrite and host rewrite, applied to the
//!   [`weir_http::RequestHead`] in place.
//! - [`redirect_location`]: the absolute `Location` of a redirect route.
//!
//! On the request path it runs right after the request head is parsed: the runner finds the route,
//! then (for a proxied route) applies its rewrite before choosing an upstream.
//!
//! Matching rules, in short: hosts compare case-insensitively with the port ignored, and `*.a.com`
//! takes any subdomain of `a.com` at any depth but not `a.com` itself; a path prefix holds at a
//! segment boundary (`/api` takes `/api`, `/api/x`, `/api?q`, not `/apix`); path and value regexes
//! must match the whole path or value; header names compare case-insensitively; query names and
//! values compare percent-decoded, with `+` as a space. Paths are matched as received (no
//! percent-decoding or dot-segment removal).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod host;
mod matcher;
mod query;
mod redirect;
mod rewrite;
mod table;

pub use error::{Error, Result};
pub use matcher::RouteMatcher;
pub use redirect::redirect_location;
pub use rewrite::Rewriter;
pub use table::RouteTable;

#[cfg(test)]
mod tests;
