//! The server name of a TLS ClientHello, read from the bytes a client sends first, without
//! answering it: a pass-through listener routes by it and then forwards every byte unchanged.
//!
//! [`parse`] follows TLS records of type handshake until the whole ClientHello is there (a large
//! hello, with post-quantum key shares, may span records), walks its fields with bounds checks
//! and returns the `server_name` extension's host name.

/// The most bytes read before giving up on a ClientHello.
pub const MAX_HELLO: usize = 32 << 10;

/// Why the first bytes are not a usable ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a TLS handshake record (plain HTTP, say).
    #[error("not TLS: the first record is not a handshake")]
    NotTls,
    /// A TLS handshake that is not a well-formed ClientHello.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
}

/// Reads the ClientHello at the start of `buf`: `Ok(None)` while more bytes are needed,
/// `Ok(Some(name))` once it is whole (`None` inside when it carries no host name).
pub fn parse(buf: &[u8]) -> Result<Option<Option<String>>, Error> {
    // Reassemble the handshake message from the records' payloads.
    let mut hs: Vec<u8> = Vec::new();
    let mut at = 0;
    loop {
        if buf.len() < at + 5 {
            return if at == 0 && !buf.is_empty() && buf[0] != 0x16 {
                Err(Error::NotTls)
            } else {
                need_more(buf, None)
            };
        }
        let rec = &buf[at..at + 5];
        if rec[0] != 0x16 {
            return Err(if at == 0 {
                Error::NotTls
            } else {
                Error::Malformed("a non-handshake record inside the ClientHello")
            });
        }
        if rec[1] != 0x03 {
            return Err(if at == 0 {
                Error::NotTls
            } else {
                Error::Malformed("bad record version")
            });
        }
        let len = usize::from(u16::from_be_bytes([rec[3], rec[4]]));
        if len == 0 || len > 16384 + 2048 {
            return Err(Error::Malformed("bad record length"));
        }
        if buf.len() < at + 5 + len {
            return need_more(buf, None);
        }
        hs.extend_from_slice(&buf[at + 5..at + 5 + len]);
        at += 5 + len;
        if hs.len() >= 4 {
            if hs[0] != 0x01 {
                return Err(Error::Malformed(
                    "the first handshake message is not a ClientHello",
                ));
            }
            let body = (usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]);
            if body + 4 > MAX_HELLO {
                return Err(Error::Malformed("ClientHello over 32 KiB"));
            }
            if hs.len() >= body + 4 {
                return hello_sni(&hs[4..4 + body]).map(Some);
            }
        }
    }
}

fn need_more(buf: &[u8], v: Option<Option<String>>) -> Result<Option<Option<String>>, Error> {
    if buf.len() > MAX_HELLO + 64 {
        return Err(Error::Malformed("ClientHello over 32 KiB"));
    }
    Ok(v)
}

/// A cursor over a ClientHello body that fails on any read past its end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Malformed("a field runs past its end"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<usize, Error> {
        Ok(usize::from(self.take(1)?[0]))
    }
    fn u16(&mut self) -> Result<usize, Error> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
}

fn hello_sni(body: &[u8]) -> Result<Option<String>, Error> {
    let mut c = Cursor(body);
    c.take(2)?; // legacy version
    c.take(32)?; // random
    let sid = c.u8()?;
    if sid > 32 {
        return Err(Error::Malformed("session id over 32 bytes"));
    }
    c.take(sid)?;
    let suites = c.u16()?;
    if suites == 0 || suites % 2 != 0 {
        return Err(Error::Malformed("bad cipher suites length"));
    }
    c.take(suites)?;
    let comp = c.u8()?;
    c.take(comp)?;
    if c.0.is_empty() {
        // No extensions at all (an old client): no name.
        return Ok(None);
    }
    let ext_len = c.u16()?;
    let mut exts = Cursor(c.take(ext_len)?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let len = exts.u16()?;
        let data = exts.take(len)?;
        if kind != 0 {
            continue;
        }
        let mut list = Cursor(data);
        let list_len = list.u16()?;
        let mut names = Cursor(list.take(list_len)?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let n = names.u16()?;
            let name = names.take(n)?;
            if name_type == 0 {
                let ok = !name.is_empty()
                    && name.len() <= 253
                    && name
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
                if !ok {
                    return Err(Error::Malformed("server name is not a DNS name"));
                }
                let s = String::from_utf8_lossy(name).to_ascii_lowercase();
                let s = s.trim_end_matches('.');
                if s.is_empty() {
                    return Err(Error::Malformed("server name is only dots"));
                }
                return Ok(Some(s.to_owned()));
            }
        }
        return Ok(None);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record for `name` (none: no SNI extension), with `pad` bytes of another
    /// extension before it.
    pub(crate) fn hello(name: Option<&str>, pad: usize) -> Vec<u8> {
        let mut exts = Vec::new();
        // A padding-like extension (type 21) first.
        exts.extend_from_slice(&21u16.to_be_bytes());
        exts.extend_from_slice(&(pad as u16).to_be_bytes());
        exts.extend(std::iter::repeat_n(0u8, pad));
        if let Some(n) = name {
            let mut sn = Vec::new();
            sn.push(0u8);
            sn.extend_from_slice(&(n.len() as u16).to_be_bytes());
            sn.extend_from_slice(n.as_bytes());
            let mut list = (sn.len() as u16).to_be_bytes().to_vec();
            list.extend_from_slice(&sn);
            exts.extend_from_slice(&0u16.to_be_bytes());
            exts.extend_from_slice(&(list.len() as u16).to_be_bytes());
            exts.extend_from_slice(&list);
        }
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(32);
        body.extend_from_slice(&[1u8; 32]);
        body.extend_from_slice(&4u16.to_be_bytes());
        body.extend_from_slice(&[0x13, 0x01, 0x13, 0x02]);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![0x01];
        let l = body.len() as u32;
        hs.extend_from_slice(&l.to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        // Split into records of at most 16 KiB.
        let mut out = Vec::new();
        for chunk in hs.chunks(16384) {
            out.extend_from_slice(&[0x16, 0x03, 0x01]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn finds_the_name() {
        let h = hello(Some("API.Example.com"), 10);
        assert_eq!(parse(&h), Ok(Some(Some("api.example.com".into()))));
        for cut in 0..h.len() {
            assert_eq!(parse(&h[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(&hello(None, 0)), Ok(Some(None)));
    }

    #[test]
    fn spans_records() {
        let h = hello(Some("big.example.com"), 20000);
        assert!(h.len() > 16384 + 10);
        assert_eq!(parse(&h), Ok(Some(Some("big.example.com".into()))));
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(Error::NotTls));
        assert_eq!(parse(b"G"), Err(Error::NotTls));
        assert_eq!(
            parse(&[0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5]),
            Err(Error::NotTls)
        );
        // A handshake that is not a ClientHello.
        assert!(parse(&[0x16, 3, 3, 0, 4, 2, 0, 0, 0]).is_err());
        // Lengths that run past their end, at every cut of the body's length fields.
        let h = hello(Some("a.example.com"), 0);
        for i in 9..h.len() {
            let mut bad = h.clone();
            bad[i] = 0xff;
            // Never a panic; an answer or an error.
            let _ = parse(&bad);
        }
        assert!(parse(&hello(Some("bad name!"), 0)).is_err());
        assert!(parse(&hello(Some(".."), 0)).is_err());
        assert_eq!(
            parse(&hello(Some("a.test."), 0)),
            Ok(Some(Some("a.test".into())))
        );
        // Over the limit.
        let mut huge = vec![0x16, 3, 1, 0x40, 0x00, 0x01, 0x01, 0x00, 0x00];
        huge.resize(5 + 0x4000, 0);
        assert!(parse(&huge).is_err());
    }
}
