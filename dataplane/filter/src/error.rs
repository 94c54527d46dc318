//! The request path's one error type, and the one place it becomes a response.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use crate::LocalResponse;

/// Which side of the gateway failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong, or went away.
    Downstream,
    /// The upstream failed, timed out, or sent something wrong.
    Upstream,
    /// A plugin failed.
    Plugin,
    /// The gateway itself.
    Internal,
}

impl Side {
    /// Lowercase name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Downstream => "downstream",
            Side::Upstream => "upstream",
            Side::Plugin => "plugin",
            Side::Internal => "internal",
        }
    }
}

/// An error on the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    /// Status sent to the client.
    pub status: u16,
    /// Machine-readable kind, e.g. `upstream_connect_failed`.
    pub kind: &'static str,
    /// Which side failed.
    pub side: Side,
    /// A retry on another connection or endpoint may succeed.
    pub retryable: bool,
    /// For humans. Never contains a secret.
    pub message: Cow<'static, str>,
}

impl ProxyError {
    /// A new error.
    pub fn new(
        status: u16,
        kind: &'static str,
        side: Side,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        ProxyError {
            status,
            kind,
            side,
            retryable: false,
            message: message.into(),
        }
    }

    /// Marks the error as one a retry may fix.
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    /// The client's request was refused by the codec (400, 413, 414, 431, 501, 505).
    pub fn from_codec(e: &weir_http::Error) -> Self {
        let side = if matches!(e, weir_http::Error::BadResponse(_)) {
            Side::Upstream
        } else {
            Side::Downstream
        };
        let kind = match e.status() {
            413 => "body_too_large",
            414 => "uri_too_long",
            431 => "headers_too_large",
            501 => "not_implemented",
            505 => "version_not_supported",
            502 => "upstream_bad_response",
            _ => "bad_request",
        };
        ProxyError::new(e.status(), kind, side, e.to_string())
    }

    /// The response the client gets: a small JSON body naming the kind, the message and the request
    /// id, in the shape of the protocol the client speaks. This is the only place request-path
    /// errors become responses.
    pub fn to_response(&self, request_id: &str, format: ErrorFormat) -> LocalResponse {
        let body = match format {
            ErrorFormat::Gateway => serde_json::json!({
                "error": {
                    "type": self.kind,
                    "message": self.message,
                    "request_id": request_id,
                }
            }),
            // The SDKs pick their exception class from the status; `type` and `code` follow the
            // OpenAI API's own values so code that inspects them keeps working.
            ErrorFormat::OpenAi => serde_json::json!({
                "error": {
                    "message": self.message,
                    "type": openai_type(self.status),
                    "param": serde_json::Value::Null,
                    "code": self.kind,
                    "request_id": request_id,
                }
            }),
            ErrorFormat::Anthropic => serde_json::json!({
                "type": "error",
                "error": {
                    "type": anthropic_type(self.status),
                    "message": self.message,
                },
                "request_id": request_id,
            }),
        };
        let mut text = body.to_string();
        text.push('\n');
        LocalResponse::new(self.status, "application/json", Bytes::from(text))
    }
}

/// The shape of error bodies: the gateway's own, or the LLM protocol the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorFormat {
    /// `{"error":{"type","message","request_id"}}`.
    #[default]
    Gateway,
    /// OpenAI: `{"error":{"message","type","param","code"}}`.
    OpenAi,
    /// Anthropic: `{"type":"error","error":{"type","message"}}`.
    Anthropic,
}

/// The OpenAI error `type` for a status.
pub fn openai_type(status: u16) -> &'static str {
    match status {
        400 | 404 | 408 | 409 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

/// The Anthropic error `type` for a status.
pub fn anthropic_type(status: u16) -> &'static str {
    match status {
        400 | 408 | 409 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} side, {}): {}",
            self.kind,
            self.side.as_str(),
            self.status,
            self.message
        )
    }
}

impl std::error::Error for ProxyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn becomes_json_response() {
        let e = ProxyError::new(504, "upstream_timeout", Side::Upstream, "no response in 5s")
            .retryable();
        assert!(e.retryable);
        let r = e.to_response("abc", ErrorFormat::Gateway);
        assert_eq!(r.status, 504);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["error"]["type"], "upstream_timeout");
        assert_eq!(v["error"]["request_id"], "abc");
        assert_eq!(r.headers.get_str("content-type"), Some("application/json"));
    }

    #[test]
    fn llm_protocol_shapes() {
        let e = ProxyError::new(429, "rate_limited", Side::Upstream, "slow down");
        let r = e.to_response("id1", ErrorFormat::OpenAi);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["code"], "rate_limited");
        assert_eq!(v["error"]["message"], "slow down");
        let r = e.to_response("id1", ErrorFormat::Anthropic);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
    }

    #[test]
    fn codec_errors_keep_their_status() {
        let e = ProxyError::from_codec(&weir_http::Error::HeadersTooLarge);
        assert_eq!((e.status, e.side), (431, Side::Downstream));
        let e = ProxyError::from_codec(&weir_http::Error::BadResponse("x"));
        assert_eq!((e.status, e.side), (502, Side::Upstream));
    }
}
