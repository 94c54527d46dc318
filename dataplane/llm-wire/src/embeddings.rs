//! OpenAI Embeddings wire format (`POST /v1/embeddings`).
//!
//! Reference: <https://platform.openai.com/docs/api-reference/embeddings>. The client's request is
//! parsed into [`EmbeddingsRequest`] and translated for providers with another embeddings API
//! (`translate::gemini`, `translate::cohere`); their answers come back as
//! [`EmbeddingsResponse`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields this crate does not model, kept so that pass-through never drops data.
pub type Extra = Map<String, Value>;

/// `POST /v1/embeddings` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    /// Model name as the client wrote it.
    pub model: String,
    /// What to embed.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64` (little-endian `f32`s, base64-encoded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    /// Shorten the embeddings to this many dimensions (newer models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// End-user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input`: one text, several texts, or the same as token ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts, one embedding each.
    Texts(Vec<String>),
    /// One input as token ids.
    Tokens(Vec<u32>),
    /// Several inputs as token ids.
    TokenBatches(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// How many embeddings the input asks for.
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Text(_) | EmbeddingInput::Tokens(_) => 1,
            EmbeddingInput::Texts(v) => v.len(),
            EmbeddingInput::TokenBatches(v) => v.len(),
        }
    }

    /// Whether the input asks for no embedding at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The texts, or `None` when the input is token ids.
    pub fn into_texts(self) -> Option<Vec<String>> {
        match self {
            EmbeddingInput::Text(t) => Some(vec![t]),
            EmbeddingInput::Texts(v) => Some(v),
            EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => None,
        }
    }
}

/// Embeddings response (`object: "list"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// `list`.
    pub object: String,
    /// One per input, in input order.
    pub data: Vec<Embedding>,
    /// Model that answered.
    pub model: String,
    /// Token counts.
    pub usage: EmbeddingsUsage,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

impl EmbeddingsResponse {
    /// A response with the given vectors, indexed in order.
    pub fn new(model: impl Into<String>, vectors: Vec<Vec<f32>>, prompt_tokens: u64) -> Self {
        EmbeddingsResponse {
            object: "list".to_owned(),
            data: vectors
                .into_iter()
                .enumerate()
                .map(|(i, embedding)| Embedding {
                    object: "embedding".to_owned(),
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    embedding,
                })
                .collect(),
            model: model.into(),
            usage: EmbeddingsUsage {
                prompt_tokens,
                total_tokens: prompt_tokens,
            },
            extra: Extra::new(),
        }
    }
}

/// One embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// `embedding`.
    pub object: String,
    /// Position of its input.
    pub index: u32,
    /// The vector.
    pub embedding: Vec<f32>,
}

/// `usage` of an embeddings response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingsUsage {
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Same as `prompt_tokens` (embeddings generate nothing).
    pub total_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_input_shape_parses() {
        let cases = [
            (json!("a"), EmbeddingInput::Text("a".into())),
            (
                json!(["a", "b"]),
                EmbeddingInput::Texts(vec!["a".into(), "b".into()]),
            ),
            (json!([1, 2, 3]), EmbeddingInput::Tokens(vec![1, 2, 3])),
            (
                json!([[1, 2], [3]]),
                EmbeddingInput::TokenBatches(vec![vec![1, 2], vec![3]]),
            ),
        ];
        for (input, expected) in cases {
            let req: EmbeddingsRequest =
                serde_json::from_value(json!({"model": "m", "input": input.clone()})).unwrap();
            assert_eq!(req.input, expected);
            assert_eq!(serde_json::to_value(&req.input).unwrap(), input);
        }
    }

    #[test]
    fn response_shape() {
        let resp = EmbeddingsResponse::new("m", vec![vec![0.5, -1.0], vec![0.25]], 7);
        assert_eq!(
            serde_json::to_value(&resp).unwrap(),
            json!({
                "object": "list",
                "data": [
                    {"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
                    {"object": "embedding", "index": 1, "embedding": [0.25]}
                ],
                "model": "m",
                "usage": {"prompt_tokens": 7, "total_tokens": 7}
            })
        );
    }
}
