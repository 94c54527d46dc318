//! Numbers of the Proxy-Wasm 0.2.1 ABI (`proxy-wasm/spec`, `abi-versions/v0.2.1`).

/// `proxy_status_t`: what every host function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// No such key, property, queue or token.
    NotFound = 1,
    /// An argument is out of range or of the wrong kind.
    BadArgument = 2,
    /// A value could not be serialized.
    SerializationFailure = 3,
    /// A value could not be parsed (a header map, a path).
    ParseFailure = 4,
    /// A pointer and size lie outside the module's memory.
    InvalidMemoryAccess = 6,
    /// Nothing to return (an empty queue, no body).
    Empty = 7,
    /// `proxy_set_shared_data` with a stale CAS.
    CasMismatch = 8,
    /// The host could not do it.
    InternalFailure = 10,
    /// The call is not supported by this host.
    Unimplemented = 12,
}

impl Status {
    /// As the `i32` a host function returns.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// `proxy_buffer_type_t`.
pub mod buffer {
    /// The request body.
    pub const HTTP_REQUEST_BODY: i32 = 0;
    /// The response body.
    pub const HTTP_RESPONSE_BODY: i32 = 1;
    /// The body of an HTTP callout's response.
    pub const HTTP_CALL_RESPONSE_BODY: i32 = 4;
    /// `vm_config`.
    pub const VM_CONFIGURATION: i32 = 6;
    /// The plugin's `config`.
    pub const PLUGIN_CONFIGURATION: i32 = 7;
}

/// `proxy_map_type_t`.
pub mod map {
    /// Request headers.
    pub const HTTP_REQUEST_HEADERS: i32 = 0;
    /// Request trailers.
    pub const HTTP_REQUEST_TRAILERS: i32 = 1;
    /// Response headers.
    pub const HTTP_RESPONSE_HEADERS: i32 = 2;
    /// Response trailers.
    pub const HTTP_RESPONSE_TRAILERS: i32 = 3;
    /// Headers of an HTTP callout's response.
    pub const HTTP_CALL_RESPONSE_HEADERS: i32 = 6;
    /// Trailers of an HTTP callout's response.
    pub const HTTP_CALL_RESPONSE_TRAILERS: i32 = 7;
}

/// `proxy_action_t`, returned by the HTTP callbacks.
pub mod action {
    /// Go on.
    pub const CONTINUE: i32 = 0;
    /// Stop iteration (headers) or stop and buffer (bodies).
    pub const PAUSE: i32 = 1;
}

/// `proxy_stream_type_t`.
pub mod stream {
    /// The HTTP request.
    pub const HTTP_REQUEST: i32 = 0;
    /// The HTTP response.
    pub const HTTP_RESPONSE: i32 = 1;
}

/// `proxy_metric_type_t`.
pub mod metric {
    /// Only goes up.
    pub const COUNTER: i32 = 0;
    /// Goes up and down.
    pub const GAUGE: i32 = 1;
    /// A distribution.
    pub const HISTOGRAM: i32 = 2;
}

/// `proxy_log_level_t`.
pub mod log_level {
    /// Trace.
    pub const TRACE: i32 = 0;
    /// Debug.
    pub const DEBUG: i32 = 1;
    /// Info.
    pub const INFO: i32 = 2;
    /// Warn.
    pub const WARN: i32 = 3;
    /// Error.
    pub const ERROR: i32 = 4;
    /// Critical.
    pub const CRITICAL: i32 = 5;
}

/// Parses a serialized header map: a count, then (name length, value length) pairs, then each
/// name and value followed by a NUL.
pub fn decode_map(data: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let word = |at: usize| -> Option<usize> {
        let b = data.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let n = word(0)?;
    if n > data.len() / 8 {
        return None;
    }
    let mut pos = 4 + n * 8;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let kl = word(4 + i * 8)?;
        let vl = word(8 + i * 8)?;
        let k = data.get(pos..pos.checked_add(kl)?)?.to_vec();
        pos += kl + 1;
        let v = data.get(pos..pos.checked_add(vl)?)?.to_vec();
        pos += vl + 1;
        out.push((k, v));
    }
    (pos <= data.len() + 1).then_some(out)
}

/// Serializes pairs in the layout [`decode_map`] reads.
pub fn encode_map<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let n = pairs.clone().count();
    let size: usize = pairs.clone().map(|(k, v)| k.len() + v.len() + 10).sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_and_bad_ones_are_refused() {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b":path", b"/a"), (b"x-b", b""), (b"k", b"v")];
        let enc = encode_map(pairs.iter().copied());
        let dec = decode_map(&enc).expect("decodes");
        assert_eq!(dec.len(), 3);
        assert_eq!(dec[0], (b":path".to_vec(), b"/a".to_vec()));
        assert_eq!(dec[1], (b"x-b".to_vec(), Vec::new()));
        assert!(decode_map(&enc[..enc.len() - 3]).is_none());
        assert!(decode_map(&[255, 255, 255, 255]).is_none());
        assert!(decode_map(&[]).is_none());
        assert_eq!(decode_map(&[0, 0, 0, 0]), Some(vec![]));
    }
}
