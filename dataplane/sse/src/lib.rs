//! Incremental SSE scanning and the AWS event-stream decoder
