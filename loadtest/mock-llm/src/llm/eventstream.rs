//! AWS event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock's
//! `ConverseStream` sends it. One message:
//!
//! ```text
//! total length (u32 BE) | headers length (u32 BE) | prelude CRC32 (of the 8 bytes before)
//! headers: name length (u8) | name | value type (u8, 7 = string) | value length (u16 BE) | value
//! payload
//! message CRC32 (of everything before it)
//! ```
//!
//! CRC32 is the IEEE one (reflected polynomial 0xEDB88320), from a table built at compile time.

/// Value type of a string header.
const STRING: u8 = 7;

static TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// CRC32 (IEEE) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8)
    })
}

/// One message with string headers.
pub fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut hdrs = Vec::new();
    for (name, value) in headers {
        hdrs.push(name.len() as u8);
        hdrs.extend_from_slice(name.as_bytes());
        hdrs.push(STRING);
        hdrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
        hdrs.extend_from_slice(value.as_bytes());
    }
    let total = 12 + hdrs.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(hdrs.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&hdrs);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// An `event` message of type `event_type` with a JSON payload.
pub fn event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    frame(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// An `exception` message of type `exception_type` with a JSON payload.
pub fn exception(exception_type: &str, payload: &[u8]) -> Vec<u8> {
    frame(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        payload,
    )
}

/// A decoded message (tests).
#[cfg(test)]
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// Decodes one message from the start of `buf`, checking both CRCs; returns it and its length.
#[cfg(test)]
pub fn decode(buf: &[u8]) -> Result<(Message, usize), String> {
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if buf.len() < 16 {
        return Err("short prelude".into());
    }
    let total = be32(&buf[0..4]) as usize;
    let hlen = be32(&buf[4..8]) as usize;
    if be32(&buf[8..12]) != crc32(&buf[..8]) {
        return Err("prelude CRC".into());
    }
    if buf.len() < total || total < 16 + hlen {
        return Err("short message".into());
    }
    if be32(&buf[total - 4..total]) != crc32(&buf[..total - 4]) {
        return Err("message CRC".into());
    }
    let mut headers = Vec::new();
    let mut h = &buf[12..12 + hlen];
    while !h.is_empty() {
        let n = h[0] as usize;
        let name = String::from_utf8_lossy(&h[1..1 + n]).into_owned();
        if h[1 + n] != STRING {
            return Err("non-string header".into());
        }
        let vlen = u16::from_be_bytes([h[2 + n], h[3 + n]]) as usize;
        let value = String::from_utf8_lossy(&h[4 + n..4 + n + vlen]).into_owned();
        headers.push((name, value));
        h = &h[4 + n + vlen..];
    }
    let payload = buf[12 + hlen..total - 4].to_vec();
    Ok((Message { headers, payload }, total))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap

    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn frames_round_trip() {
        let f = event("messageStart", br#"{"role":"assistant"}"#);
        let (m, n) = decode(&f).unwrap();
        assert_eq!(n, f.len());
        assert_eq!(m.payload, br#"{"role":"assistant"}"#);
        assert_eq!(
            m.headers,
            [
                (":event-type".into(), "messageStart".into()),
                (":content-type".into(), "application/json".into()),
                (":message-type".into(), "event".into()),
            ]
        );
        let mut bad = f.clone();
        let last = bad.len() - 5;
        bad[last] ^= 1;
        assert_eq!(decode(&bad).unwrap_err(), "message CRC");
        bad = f;
        bad[1] ^= 1;
        assert_eq!(decode(&bad).unwrap_err(), "prelude CRC");
    }

    #[test]
    fn empty_frame_matches_the_spec_example() {
        // The smallest message: no headers, no payload.
        let f = frame(&[], b"");
        assert_eq!(&f[..8], &[0, 0, 0, 16, 0, 0, 0, 0]);
        assert_eq!(u32::from_be_bytes([f[8], f[9], f[10], f[11]]), 0x05C2_48EB);
        assert_eq!(
            u32::from_be_bytes([f[12], f[13], f[14], f[15]]),
            0x7D98_C8FF
        );
    }
}
