//! OpenAI <-> bedrock translation.
