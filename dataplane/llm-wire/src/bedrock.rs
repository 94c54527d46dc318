//! bedrock wire types (filled in by the bedrock work).
