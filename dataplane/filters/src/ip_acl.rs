//! `ip_acl`: allow or deny clients by address.
//!
//! ```yaml
//! filters:
//!   - type: ip_acl
//!     allow: [10.0.0.0/8, 192.168.1.7, "2001:db8::/32"]   # when non-empty, only these pass
//!     deny: [10.6.0.0/16]                                  # these never pass
//! ```
//!
//! - Checked in `on_request_headers` against the peer address of the client connection
//!   (`RequestCtx::client_addr`; `X-Forwarded-For` is not trusted). An IPv4-mapped IPv6 peer
//!   (`::ffff:10.1.2.3`, as a dual-stack listener reports IPv4 clients) is treated as the IPv4
//!   address, and so are mapped entries in the lists. Other IPv6 networks match IPv6 clients only
//!   (`::/0` is every IPv6 client, not every client).
//! - The deny list is checked first: a match is refused with 403 (`ip_denied`). Then, if the allow
//!   list is non-empty, an address outside it is refused the same way. Both lists empty: every
//!   client passes.
//! - Entries are CIDRs or plain addresses (a plain address is a `/32` or `/128`); host bits in a
//!   CIDR are ignored (`10.1.2.3/8` is `10.0.0.0/8`). The lists are merged into sorted, disjoint
//!   ranges when the filter is built, so a check is a binary search, whatever the list's length.
//! - An entry that does not parse is refused when the filter is built.

use std::net::IpAddr;
use std::rc::Rc;

use ipnet::{IpNet, Ipv4Net};
use weir_filter::{Action, Filter, FilterFactory, ProxyError, RequestCtx, Side};
use weir_http::RequestHead;

use crate::error::{Error, Result};

const NAME: &str = "ip_acl";

/// Makes [`IpAclFilter`]s; holds both lists as sorted ranges.
#[derive(Debug)]
pub struct IpAclFactory {
    acl: Rc<Acl>,
}

#[derive(Debug)]
struct Acl {
    allow: Ranges,
    deny: Ranges,
}

/// Sorted, disjoint, non-adjacent inclusive ranges of addresses, per family.
#[derive(Debug, Default)]
struct Ranges {
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

/// The filter of one request: checks the client address.
#[derive(Debug)]
pub struct IpAclFilter {
    acl: Rc<Acl>,
}

// === impl IpAclFactory ===

impl IpAclFactory {
    /// Parses both lists (CIDRs or plain addresses).
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self> {
        Ok(IpAclFactory {
            acl: Rc::new(Acl {
                allow: Ranges::parse(allow)?,
                deny: Ranges::parse(deny)?,
            }),
        })
    }
}

impl FilterFactory for IpAclFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn create(&self) -> Box<dyn Filter> {
        Box::new(IpAclFilter {
            acl: self.acl.clone(),
        })
    }
}

// === impl Acl ===

impl Acl {
    /// Whether `ip` may pass: not denied, and allowed when there is an allow list.
    fn admits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        !self.deny.contains(ip) && (self.allow.is_empty() || self.allow.contains(ip))
    }
}

// === impl Ranges ===

impl Ranges {
    fn parse(list: &[String]) -> Result<Self> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for entry in list {
            match parse_net(entry)? {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        Ok(Ranges {
            v4: merge(v4).into(),
            v6: merge(v6).into(),
        })
    }

    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// `ip` must be canonical (a mapped IPv6 address already turned into IPv4).
    fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => in_ranges(&self.v4, u32::from(a)),
            IpAddr::V6(a) => in_ranges(&self.v6, u128::from(a)),
        }
    }
}

/// A CIDR or a plain address; IPv4-mapped IPv6 networks become IPv4 ones.
fn parse_net(entry: &str) -> Result<IpNet> {
    let s = entry.trim();
    let net = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => s
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| Error::Cidr(entry.to_owned()))?,
    };
    if let IpNet::V6(n) = net {
        match n.network().to_ipv4_mapped() {
            Some(v4) if n.prefix_len() >= 96 => {
                let n4 = Ipv4Net::new(v4, n.prefix_len() - 96)
                    .map_err(|_| Error::Cidr(entry.to_owned()))?;
                return Ok(IpNet::V4(n4));
            }
            _ => {}
        }
    }
    Ok(net.trunc())
}

/// Sorts inclusive ranges and merges those that overlap or touch.
fn merge<T: Ord + Copy + Step>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if last.1.next().is_none_or(|n| start <= n) => {
                last.1 = last.1.max(end);
            }
            _ => out.push((start, end)),
        }
    }
    out
}

/// Whether `x` falls in one of the sorted, disjoint `ranges`.
fn in_ranges<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|(start, _)| *start <= x);
    i > 0 && x <= ranges[i - 1].1
}

/// The next address, for merging adjacent ranges.
trait Step: Sized {
    fn next(self) -> Option<Self>;
}

impl Step for u32 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Step for u128 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

// === impl IpAclFilter ===

impl Filter for IpAclFilter {
    fn on_request_headers(
        &mut self,
        ctx: &mut RequestCtx,
        _req: &mut RequestHead,
    ) -> Result<Action, ProxyError> {
        if self.acl.admits(ctx.client_addr.ip()) {
            Ok(Action::Continue)
        } else {
            Err(ProxyError::new(
                403,
                "ip_denied",
                Side::Downstream,
                "the client address is not allowed on this route",
            ))
        }
    }
}

#[cfg(test)]
mod tests;
