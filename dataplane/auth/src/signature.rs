//! HMAC request signatures, in the form of the HTTP Signatures draft (cavage-12) that Kong,
//! Apache APISIX and many SDKs speak:
//!
//! ```text
//! Authorization: Signature keyId="ci",algorithm="hmac-sha256",headers="(request-target) date digest",signature="BASE64"
//! ```
//!
//! The signing string is one line per name of `headers`, joined with `\n`: `(request-target):
//! post /v1/chat/completions?x=1` (lowercase method, the target as sent), else `name: value`
//! (a repeated field's values joined with `, `). `algorithm` is `hmac-sha256` or `hmac-sha512`
//! (`hs2019` is taken as `hmac-sha256`); `Authorization: hmac username="..."` (Kong's spelling)
//! is accepted too.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The parsed `Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// The key id.
    pub key_id: String,
    /// SHA-512 rather than SHA-256.
    pub sha512: bool,
    /// Covered names, lowercase, in order.
    pub headers: Vec<String>,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

/// Parses `Signature k="v",...` / `hmac k="v",...`; `None` if it is another scheme.
pub fn parse(value: &[u8]) -> Option<Result<SignatureHeader, &'static str>> {
    let text = std::str::from_utf8(value).ok()?;
    let (scheme, rest) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("signature") && !scheme.eq_ignore_ascii_case("hmac") {
        return None;
    }
    Some(parse_params(rest))
}

fn parse_params(mut rest: &str) -> Result<SignatureHeader, &'static str> {
    let (mut key_id, mut alg, mut headers, mut sig) = (None, None, None, None);
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let (name, after) = rest.split_once('=').ok_or("bad signature parameters")?;
        let after = after
            .strip_prefix('"')
            .ok_or("signature parameters must be quoted")?;
        let end = after.find('"').ok_or("unterminated signature parameter")?;
        let value = &after[..end];
        rest = &after[end + 1..];
        match name.trim().to_ascii_lowercase().as_str() {
            "keyid" | "username" => key_id = Some(value.to_owned()),
            "algorithm" => alg = Some(value.to_ascii_lowercase()),
            "headers" => {
                headers = Some(
                    value
                        .split_ascii_whitespace()
                        .map(|h| match h.to_ascii_lowercase().as_str() {
                            "@request-target" | "request-line" => "(request-target)".to_owned(),
                            other => other.to_owned(),
                        })
                        .collect::<Vec<_>>(),
                )
            }
            "signature" => sig = Some(value.to_owned()),
            _ => {}
        }
    }
    let key_id = key_id.ok_or("the signature has no keyId")?;
    let sha512 = match alg.as_deref() {
        None | Some("hmac-sha256") | Some("hs2019") => false,
        Some("hmac-sha512") => true,
        Some(_) => return Err("the signature algorithm must be hmac-sha256 or hmac-sha512"),
    };
    let signature = STANDARD
        .decode(sig.ok_or("the signature has no signature")?)
        .map_err(|_| "the signature is not base64")?;
    Ok(SignatureHeader {
        key_id,
        sha512,
        // The draft's default is `date` alone; it is refused later as too weak.
        headers: headers.unwrap_or_else(|| vec!["date".into()]),
        signature,
    })
}

/// The signing string of a request.
pub fn signing_string(
    covered: &[String],
    method: &[u8],
    target: &[u8],
    headers: &weir_http::Headers,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(256);
    for (i, name) in covered.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        if name == "(request-target)" {
            out.extend_from_slice(b"(request-target): ");
            out.extend(method.iter().map(u8::to_ascii_lowercase));
            out.push(b' ');
            out.extend_from_slice(target);
            continue;
        }
        let name_for_lookup = if name == "host" {
            "host"
        } else {
            name.as_str()
        };
        let mut values = headers.get_all(name_for_lookup).peekable();
        if values.peek().is_none() {
            return Err(format!("the signed header `{name}` is missing"));
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        let mut first = true;
        for v in values {
            if !first {
                out.extend_from_slice(b", ");
            }
            first = false;
            out.extend_from_slice(v.trim_ascii());
        }
    }
    Ok(out)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds.
pub fn parse_http_date(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (_, rest) = s.split_once(", ")?;
    let mut it = rest.split(' ');
    let day: i64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = it.next()?;
    let time = it.next()?;
    if it.next()? != "GMT" {
        return None;
    }
    let rfc = format!("{year}-{month:02}-{day:02}T{time}Z");
    weir_config::auth::parse_rfc3339(&rfc)
}

/// The SHA-256 of a `Digest: SHA-256=<base64>` value, if it has one.
pub fn digest_sha256(v: &[u8]) -> Option<[u8; 32]> {
    let s = std::str::from_utf8(v).ok()?;
    for part in s.split(',') {
        let (alg, val) = part.trim().split_once('=')?;
        if alg.eq_ignore_ascii_case("sha-256") {
            let raw = STANDARD.decode(val.trim()).ok()?;
            return raw.try_into().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_header() {
        let h = parse(br#"Signature keyId="ci",algorithm="hmac-sha256",headers="(request-target) date",signature="AAEC""#)
            .expect("scheme")
            .expect("valid");
        assert_eq!(h.key_id, "ci");
        assert!(!h.sha512);
        assert_eq!(h.headers, ["(request-target)", "date"]);
        assert_eq!(h.signature, [0, 1, 2]);
        let k = parse(br#"hmac username="ci", algorithm="hmac-sha512", headers="@request-target x-date", signature="AA==""#)
            .expect("scheme")
            .expect("valid");
        assert!(k.sha512);
        assert_eq!(k.headers, ["(request-target)", "x-date"]);
        assert!(parse(b"Bearer abc").is_none());
        assert!(
            parse(br#"Signature keyId="ci",algorithm="hmac-sha1",signature="AA==""#)
                .expect("scheme")
                .is_err()
        );
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }

    #[test]
    fn digests() {
        let d = digest_sha256(b"SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").expect("d");
        assert_eq!(d[0], 0xe3);
    }
}
