//! `weir-ai` (stub).
