//! Query strings as `application/x-www-form-urlencoded`: `a=1&b=x+y` → (`a`, `1`), (`b`, `x y`).

use std::borrow::Cow;

/// The `name=value` pairs of a query, raw (not decoded); a pair without `=` has an empty value.
pub(crate) fn pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    query
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match memchr::memchr(b'=', p) {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &p[p.len()..]),
        })
}

/// Percent-decodes and turns `+` into a space; an invalid `%` escape stays as it is. Borrows when
/// there is nothing to decode, which is the common case.
pub(crate) fn decode(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.iter().any(|b| *b == b'%' || *b == b'+') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                raw.get(i + 1).and_then(|b| hex(*b)),
                raw.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
