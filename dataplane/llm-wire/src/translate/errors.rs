//! Error bodies and statuses between the protocols.
//!
//! The status the client sees is the provider's status; only the body changes shape. The type is
//! chosen from the status first (it is what the SDKs map to exception classes), from the source
//! type only when the status says nothing specific.

use crate::{anthropic, openai};

/// Anthropic error type for an HTTP status (<https://docs.anthropic.com/en/api/errors>).
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 | 504 => "timeout_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// HTTP status for an Anthropic error type, for errors that arrive without one (the `error`
/// event of a stream).
pub fn anthropic_status_for_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// OpenAI error type and code for an HTTP status
/// (<https://platform.openai.com/docs/guides/error-codes>). The OpenAI SDKs pick the exception
/// class from the status; the type is for humans and for clients that switch on it.
pub fn openai_error_type(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        401 => ("authentication_error", Some("invalid_api_key")),
        403 => ("permission_error", None),
        404 => ("invalid_request_error", Some("not_found")),
        408 | 504 => ("timeout_error", Some("timeout")),
        413 => ("invalid_request_error", Some("request_too_large")),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        503 | 529 => ("server_error", Some("overloaded")),
        400..=499 => ("invalid_request_error", None),
        _ => ("server_error", None),
    }
}

/// An OpenAI error body (from a provider) → the Anthropic body for the client.
pub fn openai_error_to_anthropic(err: openai::ErrorBody, status: u16) -> anthropic::ErrorBody {
    let kind = match (status, err.error.kind.as_str()) {
        // A 200-stream error or an unusual status: trust a recognizable type.
        (0 | 200, "rate_limit_error" | "requests" | "tokens") => "rate_limit_error",
        (0 | 200, "invalid_request_error") => "invalid_request_error",
        (0 | 200, _) => "api_error",
        (s, _) => anthropic_error_type(s),
    };
    anthropic::ErrorBody::new(kind, err.error.message)
}

/// An Anthropic error body (from a provider) → the OpenAI body for the client. The Anthropic type
/// is kept as `code` so nothing is lost.
pub fn anthropic_error_to_openai(err: anthropic::ErrorBody, status: u16) -> openai::ErrorBody {
    let status = match status {
        0 | 200 => anthropic_status_for_type(&err.error.kind),
        s => s,
    };
    let (kind, _) = openai_error_type(status);
    openai::ErrorBody {
        error: openai::ErrorDetail {
            message: err.error.message,
            kind: kind.to_owned(),
            param: None,
            code: Some(serde_json::Value::String(err.error.kind)),
        },
    }
}
