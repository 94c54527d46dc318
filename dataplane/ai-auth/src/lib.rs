//! `weir-ai-auth`: provider request signing (stub).
