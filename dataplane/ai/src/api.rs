//! Which API a client called, and in which protocol it expects answers and errors.

/// The client-facing protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI: `{"error":{...}}`, `data: ...` chunks ending in `[DONE]`.
    OpenAi,
    /// Anthropic: `{"type":"error",...}`, named SSE events.
    Anthropic,
}

/// A client-facing endpoint of an `ai` route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientApi {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions` (legacy text completions).
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/responses`.
    Responses,
    /// `GET /v1/models`.
    Models,
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
}

impl ClientApi {
    /// The endpoint a request is for: by path (query ignored), any prefix before `/v1/` allowed
    /// so a route may be mounted under `/llm/v1/...`. `None`: not an LLM endpoint.
    pub fn detect(path: &[u8]) -> Option<ClientApi> {
        let path = match path.iter().position(|b| *b == b'?') {
            Some(q) => &path[..q],
            None => path,
        };
        let path = path.strip_suffix(b"/").unwrap_or(path);
        let tail = |suffix: &[u8]| path.ends_with(suffix);
        Some(if tail(b"/v1/chat/completions") {
            ClientApi::Chat
        } else if tail(b"/v1/completions") {
            ClientApi::Completions
        } else if tail(b"/v1/embeddings") {
            ClientApi::Embeddings
        } else if tail(b"/v1/responses") {
            ClientApi::Responses
        } else if tail(b"/v1/models") {
            ClientApi::Models
        } else if tail(b"/v1/messages") {
            ClientApi::Messages
        } else if tail(b"/v1/messages/count_tokens") {
            ClientApi::CountTokens
        } else {
            return None;
        })
    }

    /// The protocol of answers and errors.
    pub fn protocol(self) -> Protocol {
        match self {
            ClientApi::Messages | ClientApi::CountTokens => Protocol::Anthropic,
            _ => Protocol::OpenAi,
        }
    }

    /// The method the endpoint takes.
    pub fn method(self) -> &'static [u8] {
        match self {
            ClientApi::Models => b"GET",
            _ => b"POST",
        }
    }

    /// Name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientApi::Chat => "chat",
            ClientApi::Completions => "completions",
            ClientApi::Embeddings => "embeddings",
            ClientApi::Responses => "responses",
            ClientApi::Models => "models",
            ClientApi::Messages => "messages",
            ClientApi::CountTokens => "count_tokens",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_endpoints() {
        assert_eq!(
            ClientApi::detect(b"/v1/chat/completions"),
            Some(ClientApi::Chat)
        );
        assert_eq!(
            ClientApi::detect(b"/llm/v1/messages?beta=true"),
            Some(ClientApi::Messages)
        );
        assert_eq!(
            ClientApi::detect(b"/v1/messages/count_tokens"),
            Some(ClientApi::CountTokens)
        );
        assert_eq!(ClientApi::detect(b"/v1/models/"), Some(ClientApi::Models));
        assert_eq!(ClientApi::detect(b"/v1/files"), None);
        assert_eq!(ClientApi::Messages.protocol(), Protocol::Anthropic);
    }
}
