//! cohere wire types (filled in by the cohere work).
