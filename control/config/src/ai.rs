//! The AI part of the schema: LLM providers (top-level `providers`) and the `ai` action of a route
//! (model routing, splits, fallback chains).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::schema::ValueMatch;
use crate::units::Dur;

/// An LLM provider: where it is, which protocol it speaks, and the keys it is called with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Unique name, used by route targets, logs and metrics.
    pub name: String,
    /// Which provider: decides the protocol, the default base URL and the authentication.
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    /// `scheme://host[:port][/path]`: the API root the provider's paths are appended to (for
    /// OpenAI-style providers, the part before `/chat/completions`). Defaults per type.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The key pool. Empty for `mock`, `ollama` and `vllm` (they need no key).
    #[serde(default)]
    pub keys: Vec<ProviderKey>,
    /// How a key is picked from the pool.
    #[serde(default)]
    pub key_selection: KeySelection,
    /// How long a key rests after a 429 without `Retry-After`.
    #[serde(default = "default_key_cooldown")]
    pub key_cooldown: Dur,
    /// How often a disabled key (401/403) is probed to be re-admitted.
    #[serde(default = "default_key_probe_interval")]
    pub key_probe_interval: Dur,
    /// Connect timeout to the provider.
    #[serde(default = "default_connect")]
    pub connect_timeout: Dur,
    /// Time to the response head (LLMs think before they answer).
    #[serde(default = "default_first_byte")]
    pub first_byte_timeout: Dur,
    /// Longest silence inside a streamed answer.
    #[serde(default = "default_idle")]
    pub idle_timeout: Dur,
    /// Extra request headers sent to the provider on every call.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Models this provider offers, listed by `GET /v1/models` for wildcard routes.
    #[serde(default)]
    pub models: Vec<String>,
    /// Azure OpenAI: API version and deployments.
    #[serde(default)]
    pub azure: Option<AzureOptions>,
    /// AWS Bedrock: region.
    #[serde(default)]
    pub bedrock: Option<BedrockOptions>,
    /// Google Vertex AI: project, location, token endpoint.
    #[serde(default)]
    pub vertex: Option<VertexOptions>,
    /// Anthropic: the `anthropic-version` header.
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// The in-process `mock` provider: how it answers.
    #[serde(default)]
    pub mock: Option<MockOptions>,
    /// TLS options for an `https` base URL (a private CA, a client certificate, a server-name
    /// override); an `https` base URL without them uses the default roots.
    #[serde(default)]
    pub tls: Option<crate::schema::UpstreamTls>,
}

fn default_key_cooldown() -> Dur {
    Dur::secs(30)
}
fn default_key_probe_interval() -> Dur {
    Dur::secs(30)
}
fn default_connect() -> Dur {
    Dur::secs(5)
}
fn default_first_byte() -> Dur {
    Dur::secs(120)
}
fn default_idle() -> Dur {
    Dur::secs(60)
}

/// The provider types Weir has adapters for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI.
    Openai,
    /// Azure OpenAI (deployments, `api-version`, `api-key`).
    Azure,
    /// Anthropic Messages API.
    Anthropic,
    /// Google Gemini API (`generateContent`, API key).
    Gemini,
    /// Google Vertex AI (Gemini models; service-account OAuth tokens).
    Vertex,
    /// AWS Bedrock Converse (SigV4).
    Bedrock,
    /// DeepSeek (OpenAI-compatible).
    Deepseek,
    /// Alibaba Qwen / DashScope compatible mode.
    Qwen,
    /// Moonshot (Kimi).
    Moonshot,
    /// Zhipu (GLM).
    Zhipu,
    /// Mistral.
    Mistral,
    /// Groq.
    Groq,
    /// xAI (Grok).
    Xai,
    /// OpenRouter.
    Openrouter,
    /// Together AI.
    Together,
    /// Fireworks AI.
    Fireworks,
    /// Cohere v2 chat.
    Cohere,
    /// Ollama's OpenAI-compatible API.
    Ollama,
    /// vLLM's OpenAI-compatible server.
    Vllm,
    /// Any OpenAI-compatible base URL (`base_url` required).
    OpenaiCompatible,
    /// In process: canned answers streamed token by token (quickstart, smoke tests).
    Mock,
}

impl ProviderKind {
    /// The name used in config, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Azure => "azure",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Vertex => "vertex",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Deepseek => "deepseek",
            ProviderKind::Qwen => "qwen",
            ProviderKind::Moonshot => "moonshot",
            ProviderKind::Zhipu => "zhipu",
            ProviderKind::Mistral => "mistral",
            ProviderKind::Groq => "groq",
            ProviderKind::Xai => "xai",
            ProviderKind::Openrouter => "openrouter",
            ProviderKind::Together => "together",
            ProviderKind::Fireworks => "fireworks",
            ProviderKind::Cohere => "cohere",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Vllm => "vllm",
            ProviderKind::OpenaiCompatible => "openai_compatible",
            ProviderKind::Mock => "mock",
        }
    }

    /// The API root used when `base_url` is not given (None: it must be given).
    pub fn default_base_url(self) -> Option<&'static str> {
        Some(match self {
            ProviderKind::Openai => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
            ProviderKind::Gemini => "https://generativelanguage.googleapis.com",
            ProviderKind::Deepseek => "https://api.deepseek.com/v1",
            ProviderKind::Qwen => "https://dashscope.aliyuncs.com/compatible-mode/v1",
            ProviderKind::Moonshot => "https://api.moonshot.cn/v1",
            ProviderKind::Zhipu => "https://open.bigmodel.cn/api/paas/v4",
            ProviderKind::Mistral => "https://api.mistral.ai/v1",
            ProviderKind::Groq => "https://api.groq.com/openai/v1",
            ProviderKind::Xai => "https://api.x.ai/v1",
            ProviderKind::Openrouter => "https://openrouter.ai/api/v1",
            ProviderKind::Together => "https://api.together.xyz/v1",
            ProviderKind::Fireworks => "https://api.fireworks.ai/inference/v1",
            ProviderKind::Cohere => "https://api.cohere.com",
            ProviderKind::Ollama => "http://127.0.0.1:11434/v1",
            ProviderKind::Vllm => "http://127.0.0.1:8000/v1",
            ProviderKind::Azure
            | ProviderKind::Vertex
            | ProviderKind::Bedrock
            | ProviderKind::OpenaiCompatible
            | ProviderKind::Mock => return None,
        })
    }

    /// Whether calls need a key from the pool.
    pub fn needs_key(self) -> bool {
        !matches!(
            self,
            ProviderKind::Mock | ProviderKind::Ollama | ProviderKind::Vllm
        )
    }
}

/// One key of a provider's pool. Exactly one of `value`, `env`, `file` gives the secret.
#[derive(Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProviderKey {
    /// A name for logs and metrics (default: `key-N`). Never the secret.
    #[serde(default)]
    pub id: Option<String>,
    /// The secret itself (prefer `env` or `file`).
    #[serde(default)]
    pub value: Option<String>,
    /// An environment variable of the data plane holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the secret (whitespace trimmed); for Vertex, the service-account JSON.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// AWS access key id (Bedrock); the secret access key is the secret above.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// AWS session token (Bedrock, temporary credentials).
    #[serde(default)]
    pub session_token: Option<String>,
    /// Share of requests under `key_selection: weighted`.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log line.
        f.debug_struct("ProviderKey")
            .field("id", &self.id)
            .field("value", &self.value.as_ref().map(|_| "****"))
            .field("env", &self.env)
            .field("file", &self.file)
            .field("access_key_id", &self.access_key_id)
            .field("weight", &self.weight)
            .finish()
    }
}

/// Key selection within a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeySelection {
    /// Each usable key in turn.
    #[default]
    RoundRobin,
    /// In proportion to the keys' weights.
    Weighted,
}

/// Azure OpenAI settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureOptions {
    /// The `api-version` query parameter.
    pub api_version: String,
    /// Model name → deployment name (a model not listed uses its own name as the deployment).
    #[serde(default)]
    pub deployments: BTreeMap<String, String>,
}

/// AWS Bedrock settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedrockOptions {
    /// AWS region (`us-east-1`); also the default host `bedrock-runtime.REGION.amazonaws.com`.
    pub region: String,
}

/// Google Vertex AI settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VertexOptions {
    /// GCP project id.
    pub project: String,
    /// Region (`us-central1`).
    pub location: String,
    /// OAuth token endpoint (default: the service account's `token_uri`).
    #[serde(default)]
    pub token_url: Option<String>,
}

/// The in-process mock provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockOptions {
    /// The answer (default: a sentence that echoes the question).
    #[serde(default)]
    pub reply: Option<String>,
    /// Pause between streamed tokens.
    #[serde(default = "default_token_interval")]
    pub token_interval: Dur,
}

fn default_token_interval() -> Dur {
    Dur::ms(20)
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            reply: None,
            token_interval: default_token_interval(),
        }
    }
}

/// The `ai` action of a route: requests in the OpenAI or Anthropic protocol, routed by model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AiRoute {
    /// Model routes, first match wins.
    #[serde(default)]
    pub models: Vec<ModelRoute>,
    /// Alias → model name, resolved before routing (`fast: gpt-4o-mini`).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Which failures move a request to the next target.
    #[serde(default = "default_fallback_on")]
    pub fallback_on: Vec<FallbackOn>,
    /// Attempts, backoff and deadline across the chain.
    #[serde(default)]
    pub retry: AiRetry,
}

fn default_fallback_on() -> Vec<FallbackOn> {
    vec![
        FallbackOn::Named(FallbackCondition::ConnectError),
        FallbackOn::Named(FallbackCondition::Timeout),
        FallbackOn::Status(429),
        FallbackOn::Named(FallbackCondition::Status5xx),
    ]
}

/// A failure that moves a request to the next target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FallbackOn {
    /// A named condition.
    Named(FallbackCondition),
    /// A status code from the provider.
    Status(u16),
}

/// Named fallback conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackCondition {
    /// No connection could be made (or it reset before an answer).
    ConnectError,
    /// No answer within the provider's first-byte timeout.
    Timeout,
    /// Any 5xx.
    #[serde(rename = "5xx")]
    Status5xx,
}

/// Attempts across a fallback chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiRetry {
    /// Most attempts in all (each target and each key retry counts one).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First backoff before trying a target again after a retryable failure.
    #[serde(default = "default_backoff_base")]
    pub backoff_base: Dur,
    /// Largest backoff.
    #[serde(default = "default_backoff_max")]
    pub backoff_max: Dur,
    /// Time after which no new attempt is started.
    #[serde(default = "default_deadline")]
    pub deadline: Dur,
}

fn default_attempts() -> u32 {
    5
}
fn default_backoff_base() -> Dur {
    Dur::ms(50)
}
fn default_backoff_max() -> Dur {
    Dur::secs(2)
}
fn default_deadline() -> Dur {
    Dur::secs(30)
}

impl Default for AiRetry {
    fn default() -> Self {
        AiRetry {
            max_attempts: default_attempts(),
            backoff_base: default_backoff_base(),
            backoff_max: default_backoff_max(),
            deadline: default_deadline(),
        }
    }
}

/// One model route: which requested models it takes and where they go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRoute {
    /// The model: exact (`gpt-4o`), prefix (`gpt-*`), any (`*`) or a regex (`~^claude-(.+)$`,
    /// whose captures `$1`... may be used in target model names).
    pub model: String,
    /// Request headers that must also match (routing by header).
    #[serde(default)]
    pub headers: Vec<ValueMatch>,
    /// Weighted split: one target is picked per request.
    pub targets: Vec<Target>,
    /// Tried in order after the picked target fails.
    #[serde(default)]
    pub fallback: Vec<Target>,
    /// Keep a client on the same target of a split (hash of its key or address).
    #[serde(default)]
    pub sticky: bool,
}

/// A provider and the model name it is called with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Provider name.
    pub provider: String,
    /// Model name at the provider (default: the requested one); `$1`... take regex captures.
    #[serde(default)]
    pub model: Option<String>,
    /// Share of a split.
    #[serde(default = "one")]
    pub weight: u32,
}

/// A provider's API root, parsed: `http://host:port/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (default per scheme).
    pub port: u16,
    /// Path prefix without a trailing slash (may be empty).
    pub path: String,
}

impl BaseUrl {
    /// Parses `scheme://host[:port][/path]`; no query, fragment or credentials.
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("`{url}` is not a URL (scheme://host[:port][/path])"))?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(format!("`{url}`: the scheme must be http or https")),
        };
        if rest.contains(['?', '#', '@', ' ']) {
            return Err(format!(
                "`{url}`: no query, fragment, credentials or spaces in a base URL"
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{url}`: unclosed [ in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{url}`: bad port `{p}`"))?,
            None => default_port,
        };
        Ok(BaseUrl {
            scheme: scheme.to_string(),
            host: host.to_string(),
            port,
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// `host:port` for connecting (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Host` header value: the port only when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let default = if self.scheme == "https" { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl Provider {
    /// The base URL in effect: the configured one, or the type's default (Bedrock's from its
    /// region).
    pub fn effective_base_url(&self) -> Option<String> {
        if let Some(u) = &self.base_url {
            return Some(u.clone());
        }
        if let (ProviderKind::Bedrock, Some(b)) = (self.kind, &self.bedrock) {
            return Some(format!(
                "https://bedrock-runtime.{}.amazonaws.com",
                b.region
            ));
        }
        if let (ProviderKind::Vertex, Some(v)) = (self.kind, &self.vertex) {
            return Some(format!("https://{}-aiplatform.googleapis.com", v.location));
        }
        self.kind.default_base_url().map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let u = BaseUrl::parse("http://127.0.0.1:9000/v1/").expect("parse");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9000, "/v1")
        );
        assert_eq!(u.authority(), "127.0.0.1:9000");
        assert_eq!(u.host_header(), "127.0.0.1:9000");
        let u = BaseUrl::parse("https://api.openai.com/v1").expect("parse");
        assert_eq!((u.port, u.host_header()), (443, "api.openai.com".into()));
        let u = BaseUrl::parse("http://[::1]:8080").expect("parse");
        assert_eq!((u.authority(), u.path.as_str()), ("[::1]:8080".into(), ""));
        for bad in [
            "api.openai.com",
            "ftp://x",
            "http://:80",
            "http://h:0",
            "http://h/v1?x=1",
            "http://u:p@h",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_debug_hides_the_secret() {
        let k = ProviderKey {
            value: Some("sk-live-very-secret".into()),
            ..Default::default()
        };
        assert!(!format!("{k:?}").contains("very-secret"));
    }
}
