//! Wire formats of the LLM APIs (OpenAI, Anthropic) and translation between them
