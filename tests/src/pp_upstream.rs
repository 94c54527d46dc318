//! An HTTP/1.1 upstream that requires a PROXY protocol header (v1 or v2) first on every
//! connection, as nginx `listen ... proxy_protocol` and HAProxy `accept-proxy` do: what each
//! connection declared is recorded, and every answer says which connection served it and for
//! whom. Its header parser is its own (not Weir's), so it checks what Weir writes independently.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What one accepted connection started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The connection's number (1, 2, ... in accept order).
    pub n: usize,
    /// The header's version (1 or 2); 0 when the connection did not start with a valid header
    /// (it was closed at once).
    pub version: u8,
    /// The declared client and destination; `None` for v1 `UNKNOWN` or v2 `LOCAL` (the sender's
    /// own connection, e.g. a health check).
    pub addresses: Option<(SocketAddr, SocketAddr)>,
    /// The connection ended (the peer closed it, or this side did after a bad header).
    pub closed: bool,
}

#[derive(Default)]
struct Shared {
    accepted: Mutex<Vec<Accepted>>,
    stop: AtomicBool,
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Vec<Accepted>) -> T) -> T {
        f(&mut self.accepted.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A PROXY-protocol-requiring upstream on `127.0.0.1:0`, served by threads; stopped on drop.
///
/// Every request is answered `200` with a JSON body: `{"conn": N, "src": "ip:port" | null,
/// "dst": ..., "version": V, "path": "/..."}`, the connection's number and what its header
/// declared. A request for a path ending in `/drop` is not answered: the connection is closed (an upstream reset
/// before a response head).
pub struct PpUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl PpUpstream {
    /// Starts it.
    pub fn start() -> PpUpstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding: {e}"));
        let addr = l
            .local_addr()
            .unwrap_or_else(|e| panic!("local address: {e}"));
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let n = s.with(|v| {
                    let n = v.len() + 1;
                    v.push(Accepted {
                        n,
                        version: 0,
                        addresses: None,
                        closed: false,
                    });
                    n
                });
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(&s, n, conn);
                    s.with(|v| v[n - 1].closed = true);
                });
            }
        });
        PpUpstream { addr, shared }
    }

    /// Its address as a cluster endpoint.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Every connection accepted so far, in order.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.shared.with(|v| v.clone())
    }

    /// The connections whose header declared a client (not the sender's own).
    pub fn client_conns(&self) -> Vec<Accepted> {
        let mut v = self.accepted();
        v.retain(|a| a.addresses.is_some());
        v
    }
}

impl Drop for PpUpstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the stop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads a PROXY header byte-exactly (nothing after it is consumed).
fn read_header(s: &mut TcpStream) -> io::Result<(u8, Option<(SocketAddr, SocketAddr)>)> {
    let mut first = [0u8; 1];
    s.read_exact(&mut first)?;
    if first[0] == b'P' {
        let mut line = vec![first[0]];
        while !line.ends_with(b"\r\n") {
            if line.len() >= 107 {
                return Err(bad("v1 line too long"));
            }
            s.read_exact(&mut first)?;
            line.push(first[0]);
        }
        let text = std::str::from_utf8(&line[..line.len() - 2]).map_err(|_| bad("not text"))?;
        let parts: Vec<&str> = text.split(' ').collect();
        return match parts.as_slice() {
            ["PROXY", "UNKNOWN", ..] => Ok((1, None)),
            ["PROXY", "TCP4" | "TCP6", src, dst, sport, dport] => {
                let sa = |ip: &str, port: &str| -> io::Result<SocketAddr> {
                    let ip: IpAddr = ip.parse().map_err(|_| bad("bad address"))?;
                    let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
                    Ok(SocketAddr::new(ip, port))
                };
                Ok((1, Some((sa(src, sport)?, sa(dst, dport)?))))
            }
            _ => Err(bad("not a v1 header")),
        };
    }
    let mut fixed = [0u8; 16];
    fixed[0] = first[0];
    s.read_exact(&mut fixed[1..])?;
    if fixed[..12] != *b"\r\n\r\n\0\r\nQUIT\n" || fixed[12] >> 4 != 2 {
        return Err(bad("no v2 signature"));
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    match (fixed[12] & 0x0f, fixed[13]) {
        (0, _) => Ok((2, None)),
        (1, 0x11) if len >= 12 => {
            let ip = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[o],
                    body[o + 1],
                    body[o + 2],
                    body[o + 3],
                ))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Ok((
                2,
                Some((
                    SocketAddr::new(ip(0), port(8)),
                    SocketAddr::new(ip(4), port(10)),
                )),
            ))
        }
        (1, 0x21) if len >= 36 => {
            let ip = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&body[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Ok((
                2,
                Some((
                    SocketAddr::new(ip(0), port(32)),
                    SocketAddr::new(ip(16), port(34)),
                )),
            ))
        }
        _ => Err(bad("unsupported v2 header")),
    }
}

/// One connection: the header, then requests until the peer closes.
fn serve(shared: &Shared, n: usize, mut s: TcpStream) -> io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let header = read_header(&mut s);
    let (version, addresses) = match header {
        Ok(h) => h,
        Err(e) => {
            let _ = s.shutdown(Shutdown::Both);
            return Err(e);
        }
    };
    shared.with(|v| {
        v[n - 1].version = version;
        v[n - 1].addresses = addresses;
    });
    let json_addr = |a: Option<SocketAddr>| a.map_or("null".to_owned(), |a| format!("\"{a}\""));
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    loop {
        // The head, line by line.
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" {
                break;
            }
        }
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut fields);
        if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
            return Err(bad("bad request head"));
        }
        let path = req.path.unwrap_or("").to_owned();
        let length = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| {
                std::str::from_utf8(h.value)
                    .ok()?
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        r.read_exact(&mut body)?;
        if path.ends_with("/drop") {
            let _ = w.shutdown(Shutdown::Both);
            return Ok(());
        }
        let out = format!(
            "{{\"conn\":{n},\"src\":{},\"dst\":{},\"version\":{version},\"path\":\"{path}\"}}",
            json_addr(addresses.map(|a| a.0)),
            json_addr(addresses.map(|a| a.1)),
        );
        write!(
            w,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{out}",
            out.len()
        )?;
        w.flush()?;
    }
}
