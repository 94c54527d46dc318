//! Streams, event by event: small state machines that never buffer the answer.
//!
//! Both take one parsed upstream item at a time and append the client's items to a caller-owned
//! `Vec` (cleared and reused by the caller, so a long stream does not allocate per event for the
//! container). Both keep the usage they saw, for token accounting.

use serde_json::Value;

use super::{
    anthropic_error_to_openai, finish_to_stop_reason, openai_error_to_anthropic,
    stop_to_finish_reason,
};
use crate::anthropic::{self as an, BlockDelta, ContentBlock, StreamEvent};
use crate::openai::{self as oa, StreamItem};
use crate::Usage;

// === impl OpenAiToAnthropicStream ===

/// The block currently open on the Anthropic side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    Thinking(u32),
    Tool(u32),
}

/// Turns an OpenAI chunk stream into the Anthropic event sequence: `message_start`, then per block
/// `content_block_start`, deltas, `content_block_stop`, then `message_delta` (stop reason and
/// usage) and `message_stop`.
///
/// OpenAI reports usage in a last chunk after the one with `finish_reason` (when
/// `include_usage` was asked upstream, which the gateway always does), so `message_delta` is sent
/// once both are known, or at [`finish`](Self::finish). Input tokens are therefore 0 in
/// `message_start` and exact in `message_delta`, whose usage carries input tokens too (as the
/// current Anthropic API does).
#[derive(Debug, Default)]
pub struct OpenAiToAnthropicStream {
    started: bool,
    ended: bool,
    open: Option<Open>,
    next_index: u32,
    /// OpenAI tool-call index → Anthropic block index.
    tools: Vec<(u32, u32)>,
    stop_reason: Option<an::StopReason>,
    refused: bool,
    usage: Option<Usage>,
}

impl OpenAiToAnthropicStream {
    /// A translator for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The usage the upstream reported, once it has.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Translates one upstream item (one `data:` line; `[DONE]` is [`finish`](Self::finish)).
    pub fn push(&mut self, item: StreamItem, out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        let chunk = match item {
            StreamItem::Chunk(c) => c,
            StreamItem::Error(e) => {
                let body = openai_error_to_anthropic(e, 0);
                out.push(StreamEvent::Error { error: body.error });
                self.ended = true;
                return;
            }
        };
        if !self.started {
            self.started = true;
            out.push(StreamEvent::MessageStart {
                message: an::MessagesResponse {
                    id: chunk.id,
                    kind: "message".to_owned(),
                    role: an::Role::Assistant,
                    content: Vec::new(),
                    model: chunk.model,
                    stop_reason: None,
                    stop_sequence: None,
                    usage: an::Usage::default(),
                    extra: an::Extra::new(),
                },
            });
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(Usage::from_openai(u));
        }
        // `n > 1` is refused on the request, so only choice 0 exists.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            let d = choice.delta;
            if let Some(t) = d.reasoning_content.filter(|t| !t.is_empty()) {
                let index = self.ensure_open(Open::Thinking, out);
                out.push(StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::ThinkingDelta { thinking: t },
                });
            }
            if let Some(t) = d.content.filter(|t| !t.is_empty()) {
                let index = self.ensure_open(Open::Text, out);
                out.push(text_delta(index, t));
            }
            if let Some(t) = d.refusal.filter(|t| !t.is_empty()) {
                self.refused = true;
                let index = self.ensure_open(Open::Text, out);
                out.push(text_delta(index, t));
            }
            for call in d.tool_calls.into_iter().flatten() {
                self.tool_delta(call, out);
            }
            if let Some(reason) = &choice.finish_reason {
                self.close(out);
                self.stop_reason = Some(if self.refused {
                    an::StopReason::Refusal
                } else {
                    finish_to_stop_reason(reason)
                });
            }
        }
        if self.stop_reason.is_some() && self.usage.is_some() {
            self.end(out);
        }
    }

    /// Ends the stream (upstream `[DONE]` or end of body). Returns whether the upstream had said
    /// why it stopped; `false` means the answer was cut short.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> bool {
        if self.ended {
            return true;
        }
        if !self.started {
            return false;
        }
        self.close(out);
        let complete = self.stop_reason.is_some();
        self.end(out);
        complete
    }

    fn tool_delta(&mut self, call: oa::ToolCallDelta, out: &mut Vec<StreamEvent>) {
        let known = self
            .tools
            .iter()
            .find(|(oa_index, _)| *oa_index == call.index)
            .map(|&(_, an_index)| an_index);
        let (name, arguments) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        let index = match known {
            // A call that was already closed (servers that interleave parallel calls): its
            // argument pieces still go to its own index, which clients accumulate by.
            Some(index) => index,
            None => {
                self.close(out);
                let index = self.next_index;
                self.next_index += 1;
                self.tools.push((call.index, index));
                self.open = Some(Open::Tool(index));
                out.push(StreamEvent::ContentBlockStart {
                    index,
                    content_block: ContentBlock::ToolUse {
                        id: call.id.unwrap_or_else(|| format!("call_{}", call.index)),
                        name: name.unwrap_or_default(),
                        input: Value::Object(Default::default()),
                        extra: an::Extra::new(),
                    },
                });
                index
            }
        };
        if let Some(partial_json) = arguments.filter(|a| !a.is_empty()) {
            out.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::InputJsonDelta { partial_json },
            });
        }
    }

    /// Index of the open block of this kind, opening it (and closing another) if needed.
    fn ensure_open(&mut self, kind: fn(u32) -> Open, out: &mut Vec<StreamEvent>) -> u32 {
        if let Some(open) = self.open {
            let (Open::Text(index) | Open::Thinking(index) | Open::Tool(index)) = open;
            if open == kind(index) {
                return index;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        let open = kind(index);
        let content_block = match open {
            Open::Thinking(_) => ContentBlock::Thinking {
                thinking: String::new(),
                signature: String::new(),
                extra: an::Extra::new(),
            },
            _ => ContentBlock::text(""),
        };
        self.open = Some(open);
        out.push(StreamEvent::ContentBlockStart {
            index,
            content_block,
        });
        index
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        match self.open.take() {
            Some(Open::Text(index) | Open::Thinking(index) | Open::Tool(index)) => {
                out.push(StreamEvent::ContentBlockStop { index })
            }
            None => {}
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        let u = self.usage.unwrap_or_default().to_anthropic();
        out.push(StreamEvent::MessageDelta {
            delta: an::MessageDeltaBody {
                stop_reason: self.stop_reason.clone(),
                stop_sequence: None,
                extra: an::Extra::new(),
            },
            usage: an::DeltaUsage {
                output_tokens: u.output_tokens,
                input_tokens: Some(u.input_tokens),
                cache_creation_input_tokens: u.cache_creation_input_tokens,
                cache_read_input_tokens: u.cache_read_input_tokens,
                extra: an::Extra::new(),
            },
        });
        out.push(StreamEvent::MessageStop);
        self.ended = true;
    }
}

fn text_delta(index: u32, text: String) -> StreamEvent {
    StreamEvent::ContentBlockDelta {
        index,
        delta: BlockDelta::TextDelta { text },
    }
}

// === impl AnthropicToOpenAiStream ===

/// Turns an Anthropic event stream into OpenAI chunks: a first chunk with the role, one chunk per
/// text, thinking (`reasoning_content`) or tool-argument delta, a chunk with `finish_reason`,
/// and, when the client asked `include_usage`, a last chunk with usage and no choices. The caller
/// writes `data: [DONE]` after [`finish`](Self::finish).
#[derive(Debug)]
pub struct AnthropicToOpenAiStream {
    include_usage: bool,
    created: u64,
    id: String,
    model: String,
    started: bool,
    done: bool,
    usage: Usage,
    /// Anthropic block index → OpenAI tool-call index.
    tools: Vec<(u32, u32)>,
}

impl AnthropicToOpenAiStream {
    /// A translator for one stream; `created` is the Unix time stamped on every chunk.
    pub fn new(include_usage: bool, created: u64) -> Self {
        AnthropicToOpenAiStream {
            include_usage,
            created,
            id: String::new(),
            model: String::new(),
            started: false,
            done: false,
            usage: Usage::default(),
            tools: Vec::new(),
        }
    }

    /// The usage seen so far (exact once `message_delta` has arrived).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Translates one upstream event.
    pub fn push(&mut self, event: StreamEvent, out: &mut Vec<StreamItem>) {
        if self.done {
            return;
        }
        match event {
            StreamEvent::MessageStart { message } => {
                self.started = true;
                self.id = message.id;
                self.model = message.model;
                self.usage = Usage::from_anthropic(&message.usage);
                out.push(self.chunk(
                    oa::Delta {
                        role: Some("assistant".to_owned()),
                        content: Some(String::new()),
                        ..Default::default()
                    },
                    None,
                ));
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ContentBlock::Text { text, .. } if !text.is_empty() => {
                    out.push(self.content(text));
                }
                ContentBlock::Thinking { thinking, .. } if !thinking.is_empty() => {
                    out.push(self.reasoning(thinking));
                }
                ContentBlock::ToolUse {
                    id, name, input, ..
                } => {
                    let oa_index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                    self.tools.push((index, oa_index));
                    // The start carries `{}`; arguments follow as input_json_delta pieces.
                    let arguments = match &input {
                        Value::Object(m) if m.is_empty() => String::new(),
                        v => v.to_string(),
                    };
                    out.push(self.tool_chunk(oa::ToolCallDelta {
                        index: oa_index,
                        id: Some(id),
                        kind: Some("function".to_owned()),
                        function: Some(oa::FunctionCallDelta {
                            name: Some(name),
                            arguments: Some(arguments),
                        }),
                    }));
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                // Empty pieces (Anthropic starts tool input with `""`) would be empty chunks.
                BlockDelta::TextDelta { text } if text.is_empty() => {}
                BlockDelta::ThinkingDelta { thinking } if thinking.is_empty() => {}
                BlockDelta::InputJsonDelta { partial_json } if partial_json.is_empty() => {}
                BlockDelta::TextDelta { text } => out.push(self.content(text)),
                BlockDelta::ThinkingDelta { thinking } => out.push(self.reasoning(thinking)),
                BlockDelta::InputJsonDelta { partial_json } => {
                    if let Some(&(_, oa_index)) = self.tools.iter().find(|(i, _)| *i == index) {
                        out.push(self.tool_chunk(oa::ToolCallDelta {
                            index: oa_index,
                            function: Some(oa::FunctionCallDelta {
                                name: None,
                                arguments: Some(partial_json),
                            }),
                            ..Default::default()
                        }));
                    }
                }
                // Signatures only matter for sending thinking back to Anthropic.
                BlockDelta::SignatureDelta { .. } | BlockDelta::Other(_) => {}
            },
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping => {}
            StreamEvent::MessageDelta { delta, usage } => {
                self.usage.merge_anthropic_delta(&usage);
                if let Some(reason) = &delta.stop_reason {
                    out.push(self.chunk(oa::Delta::default(), Some(stop_to_finish_reason(reason))));
                }
            }
            StreamEvent::MessageStop => {
                self.end(out);
            }
            StreamEvent::Error { error } => {
                let body = an::ErrorBody::new(error.kind, error.message);
                out.push(StreamItem::Error(anthropic_error_to_openai(body, 0)));
                self.done = true;
            }
        }
    }

    /// Ends the stream. Returns whether `message_stop` had arrived; `false` means the answer was
    /// cut short (the usage chunk is still sent if asked, with what is known).
    pub fn finish(&mut self, out: &mut Vec<StreamItem>) -> bool {
        if self.done {
            return true;
        }
        if self.started {
            self.end(out);
        }
        false
    }

    fn end(&mut self, out: &mut Vec<StreamItem>) {
        if self.include_usage {
            let mut chunk = self.chunk_raw(Vec::new());
            chunk.usage = Some(self.usage.to_openai());
            out.push(StreamItem::Chunk(chunk));
        }
        self.done = true;
    }

    fn content(&self, text: String) -> StreamItem {
        self.chunk(
            oa::Delta {
                content: Some(text),
                ..Default::default()
            },
            None,
        )
    }

    fn reasoning(&self, text: String) -> StreamItem {
        self.chunk(
            oa::Delta {
                reasoning_content: Some(text),
                ..Default::default()
            },
            None,
        )
    }

    fn tool_chunk(&self, call: oa::ToolCallDelta) -> StreamItem {
        self.chunk(
            oa::Delta {
                tool_calls: Some(vec![call]),
                ..Default::default()
            },
            None,
        )
    }

    fn chunk(&self, delta: oa::Delta, finish_reason: Option<oa::FinishReason>) -> StreamItem {
        StreamItem::Chunk(self.chunk_raw(vec![oa::ChunkChoice {
            index: 0,
            delta,
            finish_reason,
            logprobs: None,
            extra: oa::Extra::new(),
        }]))
    }

    fn chunk_raw(&self, choices: Vec<oa::ChunkChoice>) -> oa::ChatCompletionChunk {
        oa::ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: None,
            system_fingerprint: None,
            extra: oa::Extra::new(),
        }
    }
}
