//! OpenAI <-> gemini translation.
