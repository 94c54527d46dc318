//! gemini wire types (filled in by the gemini work).
