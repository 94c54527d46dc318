//! OpenAI <-> cohere translation.
