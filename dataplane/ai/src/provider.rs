//! Providers: what every core shares about one (its base URL, key pool, options), and the
//! protocol family ([`Dialect`]) that decides how a call is written and its answer read.

use std::sync::Arc;

use weir_config::{BaseUrl, ProviderKind};

use crate::keys::{KeyPool, KeySpec, Secret};
use crate::Error;

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions and friends (OpenAI and every OpenAI-compatible provider).
    OpenAi,
    /// OpenAI on Azure: deployments in the path, `api-version`, `api-key`.
    Azure,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini `generateContent` (API key).
    Gemini,
    /// Gemini on Vertex AI (OAuth bearer token).
    Vertex,
    /// Bedrock Converse (SigV4, binary event stream).
    Bedrock,
    /// Cohere v2 chat.
    Cohere,
    /// The in-process mock (answers in the OpenAI format).
    Mock,
}

impl Dialect {
    /// The dialect of a provider type.
    pub fn of(kind: ProviderKind) -> Dialect {
        match kind {
            ProviderKind::Azure => Dialect::Azure,
            ProviderKind::Anthropic => Dialect::Anthropic,
            ProviderKind::Gemini => Dialect::Gemini,
            ProviderKind::Vertex => Dialect::Vertex,
            ProviderKind::Bedrock => Dialect::Bedrock,
            ProviderKind::Cohere => Dialect::Cohere,
            ProviderKind::Mock => Dialect::Mock,
            _ => Dialect::OpenAi,
        }
    }

    /// Whether answers come in the OpenAI chat format (possibly after the mock made them).
    pub fn speaks_openai(self) -> bool {
        matches!(self, Dialect::OpenAi | Dialect::Azure | Dialect::Mock)
    }
}

/// What all cores share about a provider. Kept across config generations while its config is
/// unchanged, so key health survives a reload.
#[derive(Debug)]
pub struct SharedProvider {
    /// The provider's config.
    pub config: weir_config::Provider,
    /// Its protocol.
    pub dialect: Dialect,
    /// Where it is (None for the in-process mock).
    pub base: Option<BaseUrl>,
    /// Its keys.
    pub keys: KeyPool,
    /// Name of the cluster that holds its connections (`ai:NAME`).
    pub cluster: String,
    /// Vertex: the service accounts of the keys, parsed.
    pub vertex: Option<crate::vertex::TokenCache>,
}

impl SharedProvider {
    /// Builds the shared part of a provider, reading its key secrets from the config, the
    /// environment or files. Errors name the provider and key, never the secret.
    pub fn new(config: &weir_config::Provider) -> Result<Arc<SharedProvider>, Error> {
        let dialect = Dialect::of(config.kind);
        let base = config
            .effective_base_url()
            .map(|u| BaseUrl::parse(&u))
            .transpose()
            .map_err(|e| Error::Config(format!("provider `{}`: {e}", config.name)))?;
        let mut keys = Vec::with_capacity(config.keys.len());
        for (i, k) in config.keys.iter().enumerate() {
            let id = k.id.clone().unwrap_or_else(|| format!("key-{i}"));
            let secret = read_secret(&config.name, &id, k)?;
            keys.push(KeySpec {
                id,
                secret: Secret::new(secret),
                access_key_id: k.access_key_id.clone(),
                session_token: k.session_token.clone().map(Secret::new),
                weight: k.weight,
            });
        }
        if dialect == Dialect::Mock {
            // The mock counts every answer with the tokenizer: load it now, not on a request.
            let _ = crate::estimate::count("warm");
        }
        let vertex = match dialect {
            Dialect::Vertex => Some(crate::vertex::TokenCache::new(config, &keys)?),
            _ => None,
        };
        let keys = KeyPool::new(
            keys,
            config.key_selection,
            config.key_cooldown.get(),
            config.key_probe_interval.get(),
        );
        Ok(Arc::new(SharedProvider {
            cluster: cluster_name(&config.name),
            config: config.clone(),
            dialect,
            base,
            keys,
            vertex,
        }))
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The cluster config that carries this provider's connections (None for the mock). The
    /// base URL's scheme decides TLS: `https` gets the provider's `tls` options (or the defaults:
    /// the system and bundled roots, the base URL's host as the server name).
    pub fn cluster_config(&self) -> Option<weir_config::Cluster> {
        let base = self.base.as_ref()?;
        let tls = (base.scheme == "https").then(|| self.config.tls.clone().unwrap_or_default());
        Some(weir_config::Cluster {
            name: self.cluster.clone(),
            endpoints: vec![weir_config::Endpoint::Plain(base.authority())],
            lb: Default::default(),
            connect_timeout: self.config.connect_timeout,
            protocol: Default::default(),
            pool: Default::default(),
            health_check: None,
            outlier: None,
            dns_refresh: weir_config::Dur::secs(30),
            tls,
            proxy_protocol: None,
        })
    }
}

/// The cluster name of a provider's connections.
pub fn cluster_name(provider: &str) -> String {
    format!("ai:{provider}")
}

fn read_secret(provider: &str, id: &str, k: &weir_config::ProviderKey) -> Result<String, Error> {
    if let Some(v) = &k.value {
        return Ok(v.clone());
    }
    if let Some(var) = &k.env {
        return match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(Error::Config(format!(
                "provider `{provider}` key `{id}`: environment variable `{var}` is not set"
            ))),
        };
    }
    if let Some(path) = &k.file {
        return match std::fs::read_to_string(path) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Ok(_) => Err(Error::Config(format!(
                "provider `{provider}` key `{id}`: `{}` is empty",
                path.display()
            ))),
            Err(e) => Err(Error::Config(format!(
                "provider `{provider}` key `{id}`: cannot read `{}`: {e}",
                path.display()
            ))),
        };
    }
    Err(Error::Config(format!(
        "provider `{provider}` key `{id}`: no secret given"
    )))
}

/// A health probe of one key: a cheap authenticated GET (the provider's model list).
#[derive(Debug)]
pub struct ProbeRequest {
    /// `host:port` to connect to.
    pub authority: String,
    /// The request head to send, auth included (never log it).
    pub head: String,
}

impl SharedProvider {
    /// The probe of key `k`, or None where the provider has no cheap authenticated GET (Bedrock's
    /// runtime API and Vertex): there a disabled key is re-tried by a real request once its probe
    /// interval has passed.
    pub fn probe_request(&self, k: usize) -> Option<ProbeRequest> {
        let base = self.base.as_ref()?;
        let key = self.keys.keys().get(k)?;
        let secret = key.secret.expose();
        let (path, auth) = match self.dialect {
            Dialect::OpenAi => (
                format!("{}/models", base.path),
                format!("authorization: Bearer {secret}"),
            ),
            Dialect::Cohere => (
                format!("{}/v1/models", base.path),
                format!("authorization: Bearer {secret}"),
            ),
            Dialect::Azure => {
                let v = self.config.azure.as_ref()?;
                (
                    format!(
                        "{}/openai/models?api-version={}",
                        base.path,
                        crate::call::encode_segment(&v.api_version)
                    ),
                    format!("api-key: {secret}"),
                )
            }
            Dialect::Anthropic => (
                format!("{}/v1/models", base.path),
                format!(
                    "x-api-key: {secret}\r\nanthropic-version: {}",
                    self.config
                        .anthropic_version
                        .as_deref()
                        .unwrap_or("2023-06-01")
                ),
            ),
            Dialect::Gemini => (
                format!("{}/v1beta/models", base.path),
                format!("x-goog-api-key: {secret}"),
            ),
            Dialect::Bedrock | Dialect::Vertex | Dialect::Mock => return None,
        };
        Some(ProbeRequest {
            authority: base.authority(),
            head: format!(
                "GET {path} HTTP/1.1\r\nhost: {}\r\n{auth}\r\nuser-agent: weir-key-probe\r\nconnection: close\r\n\r\n",
                base.host_header()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(yaml: &str) -> Arc<SharedProvider> {
        let cfg: weir_config::Provider = serde_yaml_ng::from_str(yaml).expect("provider yaml");
        SharedProvider::new(&cfg).expect("provider")
    }

    #[test]
    fn the_scheme_decides_tls() {
        let p = provider("{ name: o, type: openai, keys: [{ value: k }] }");
        let c = p.cluster_config().expect("cluster");
        assert_eq!(c.endpoints[0].address(), "api.openai.com:443");
        assert_eq!(c.tls, Some(weir_config::UpstreamTls::default()));

        let p = provider(
            "{ name: o, type: openai, base_url: \"https://127.0.0.1:8443/v1\", keys: [{ value: k }], tls: { ca_file: /etc/weir/ca.pem, sni: relay.internal } }",
        );
        let tls = p.cluster_config().and_then(|c| c.tls).expect("tls");
        assert_eq!(tls.sni.as_deref(), Some("relay.internal"));
        assert_eq!(
            tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/weir/ca.pem"))
        );

        let p = provider("{ name: l, type: vllm }");
        assert_eq!(p.cluster_config().and_then(|c| c.tls), None);
    }
}
