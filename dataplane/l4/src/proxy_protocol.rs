//! The PROXY protocol (HAProxy, versions 1 and 2): the addresses of the original connection,
//! sent by a load balancer before the client's own bytes.
//!
//! [`parse`] reads a header at the start of a buffer: `Ok(None)` while more bytes are needed,
//! `Ok(Some((header, consumed)))` once it is whole, `Err` as soon as the bytes cannot be one.
//! It never reads past the header: what follows is the client's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included.
pub const V1_MAX: usize = 107;
/// The longest v2 header accepted (16 fixed bytes and the addresses and TLVs); the protocol
/// allows more, no balancer sends that much.
pub const V2_MAX: usize = 16 + 4096;

/// What a header declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The original client and the address it connected to; `None` for a `LOCAL` (v2) or
    /// `UNKNOWN` (v1) header: the balancer's own connection (a health check), whose real peer
    /// address stands.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
    /// The protocol version (1 or 2).
    pub version: u8,
}

/// Why bytes are not a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The connection does not start with `PROXY ` or the v2 signature.
    #[error("no PROXY protocol header")]
    Missing,
    /// A header that breaks the protocol.
    #[error("malformed PROXY protocol v{0} header: {1}")]
    Malformed(u8, &'static str),
}

/// Reads a header from the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'P' {
        return parse_v1(buf);
    }
    if buf[0] == V2_SIGNATURE[0] {
        return parse_v2(buf);
    }
    Err(Error::Missing)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    let prefix = b"PROXY ";
    let n = buf.len().min(prefix.len());
    if buf[..n] != prefix[..n] {
        return Err(Error::Missing);
    }
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX {
            return Err(Error::Malformed(1, "no CRLF within 107 bytes"));
        }
        return Ok(None);
    };
    let bad = |what| Error::Malformed(1, what);
    let line = std::str::from_utf8(&buf[prefix.len()..end]).map_err(|_| bad("not text"))?;
    let mut parts = line.split(' ');
    let proto = parts.next().ok_or(bad("no protocol"))?;
    let consumed = end + 2;
    if proto == "UNKNOWN" {
        // The rest of the line is to be ignored.
        return Ok(Some((
            Header {
                addresses: None,
                version: 1,
            },
            consumed,
        )));
    }
    let fields: Vec<&str> = parts.collect();
    if fields.len() != 4 {
        return Err(bad("want: PROTO SRC DST SPORT DPORT"));
    }
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (
            IpAddr::V4(fields[0].parse().map_err(|_| bad("bad IPv4 source"))?),
            IpAddr::V4(fields[1].parse().map_err(|_| bad("bad IPv4 destination"))?),
        ),
        "TCP6" => (
            IpAddr::V6(fields[0].parse().map_err(|_| bad("bad IPv6 source"))?),
            IpAddr::V6(fields[1].parse().map_err(|_| bad("bad IPv6 destination"))?),
        ),
        _ => return Err(bad("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let port = |s: &str| -> Result<u16, Error> {
        // Decimal without a sign or leading zeros, as the protocol says.
        if s.is_empty() || s.len() > 5 || (s.len() > 1 && s.starts_with('0')) {
            return Err(bad("bad port"));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("bad port"));
        }
        s.parse().map_err(|_| bad("bad port"))
    };
    let sport = port(fields[2])?;
    let dport = port(fields[3])?;
    Ok(Some((
        Header {
            addresses: Some((SocketAddr::new(src, sport), SocketAddr::new(dst, dport))),
            version: 1,
        },
        consumed,
    )))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(Error::Missing);
    }
    if buf.len() < 16 {
        return Ok(None);
    }
    let bad = |what| Error::Malformed(2, what);
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(bad("version is not 2"));
    }
    let fam = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if 16 + len > V2_MAX {
        return Err(bad("longer than 4 KiB"));
    }
    if buf.len() < 16 + len {
        return Ok(None);
    }
    let body = &buf[16..16 + len];
    let consumed = 16 + len;
    let local = Header {
        addresses: None,
        version: 2,
    };
    match ver_cmd & 0x0f {
        // LOCAL: the balancer's own connection; the address block is to be ignored.
        0 => return Ok(Some((local, consumed))),
        1 => {}
        _ => return Err(bad("command is neither LOCAL nor PROXY")),
    }
    let addresses = match fam {
        // TCP over IPv4.
        0x11 => {
            if body.len() < 12 {
                return Err(bad("IPv4 addresses cut short"));
            }
            let src = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let dst = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
            let sport = u16::from_be_bytes([body[8], body[9]]);
            let dport = u16::from_be_bytes([body[10], body[11]]);
            Some((
                SocketAddr::new(src.into(), sport),
                SocketAddr::new(dst.into(), dport),
            ))
        }
        // TCP over IPv6.
        0x21 => {
            if body.len() < 36 {
                return Err(bad("IPv6 addresses cut short"));
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&body[..16]);
            d.copy_from_slice(&body[16..32]);
            let sport = u16::from_be_bytes([body[32], body[33]]);
            let dport = u16::from_be_bytes([body[34], body[35]]);
            Some((
                SocketAddr::new(Ipv6Addr::from(s).into(), sport),
                SocketAddr::new(Ipv6Addr::from(d).into(), dport),
            ))
        }
        // UNSPEC: an unknown protocol; the receiver keeps the real addresses.
        0x00 => None,
        _ => return Err(bad("not TCP over IPv4 or IPv6")),
    };
    Ok(Some((
        Header {
            addresses,
            version: 2,
        },
        consumed,
    )))
}

/// A header of `version` (1 or 2) for a connection from `src` to `dst`. Mixed families (an IPv4
/// client of an IPv6 listener) are written in IPv6, IPv4 addresses mapped.
pub fn encode(version: u8, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let same = src.is_ipv4() == dst.is_ipv4();
    if version == 1 {
        let (src, dst) = if same { (src, dst) } else { (v6(src), v6(dst)) };
        let fam = if src.is_ipv4() { "TCP4" } else { "TCP6" };
        return format!(
            "PROXY {fam} {} {} {} {}\r\n",
            src.ip(),
            dst.ip(),
            src.port(),
            dst.port()
        )
        .into_bytes();
    }
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    // Version 2, PROXY.
    out.push(0x21);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&ipv6_of(s).octets());
            out.extend_from_slice(&ipv6_of(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

/// A header of `version` (1 or 2) that declares no client: the sender's own connection (a health
/// check, a request the gateway makes itself). v1 `PROXY UNKNOWN`, v2 the `LOCAL` command; a
/// receiver keeps the connection's real addresses, as [`parse`] does.
pub fn encode_local(version: u8) -> Vec<u8> {
    if version == 1 {
        return b"PROXY UNKNOWN\r\n".to_vec();
    }
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&V2_SIGNATURE);
    // Version 2, LOCAL; family UNSPEC, no address block.
    out.extend_from_slice(&[0x20, 0x00, 0, 0]);
    out
}

fn ipv6_of(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn v6(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(ipv6_of(a.ip())), a.port())
}

#[cfg(test)]
mod tests;
