"""The official OpenAI Python SDK against Weir, one provider family at a time behind it: chat,
streams, tool calls, embeddings, usage and the model list, checked against what weir-mock-llm
answers (its documented deterministic rules) and what it logged."""

from __future__ import annotations

import json

import openai
import pytest

from conftest import (
    MODEL_ROUTES,
    TIME_ARGS,
    TIME_TOOL,
    WEATHER_ARGS,
    WEATHER_TOOL,
    chat_requests,
    default_stack,
    mock_embedding,
    mock_text,
    mock_usage,
    openai_tools,
)

PROMPT = "say hi to the gateway please"

# (test id, requested model, family named in the mock's reply; None: Weir's in-process mock)
FAMILIES = [
    ("openai", "gpt-4o-mini", "openai"),
    ("azure", "azure-gpt", "azure"),
    ("anthropic", "claude-3-5-haiku", "anthropic"),
    ("gemini", "gemini-2.0-flash", "gemini"),
    ("vertex", "vertex-gemini", "vertex"),
    ("bedrock-nova", "amazon.nova-lite", "bedrock"),
    ("bedrock-claude", "anthropic.claude-3-haiku", "bedrock"),
    ("cohere", "command-r", "cohere"),
    ("deepseek", "deepseek-chat", "openai"),
    ("openai-compatible", "compat-model", "openai"),
    ("inprocess-mock", "mock-gpt", None),
]
NETWORK = [f for f in FAMILIES if f[2] is not None]
# Families whose wire format carries several tool calls in one answer.
PARALLEL = [f for f in NETWORK if f[0] not in ("openai-compatible",)]


def ids(fams):
    return [f[0] for f in fams]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = default_stack(tmp_path_factory, "openai-sdk")
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean_mock(stack):
    stack.mock.clear_script()
    stack.mock.clear_requests()


@pytest.fixture(scope="module")
def client(stack):
    return stack.openai()


def upstream(stack) -> list[dict]:
    """The provider requests the mock got in this test."""
    reqs = chat_requests(stack.mock)
    assert reqs, "the mock got no request"
    return reqs


# === chat ===


@pytest.mark.parametrize("fam,model,family", FAMILIES, ids=ids(FAMILIES))
def test_chat(stack, client, fam, model, family):
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}]
    )
    assert r.object == "chat.completion"
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    u = r.usage
    assert u is not None and u.total_tokens == u.prompt_tokens + u.completion_tokens
    if family is None:
        assert choice.message.content == (
            f"Hello from Weir's built-in mock provider. You said: {PROMPT}"
        )
        assert u.prompt_tokens > 0 and u.completion_tokens > 0
        return
    text = mock_text(family, PROMPT)
    assert choice.message.content == text
    assert (u.prompt_tokens, u.completion_tokens) == mock_usage(PROMPT, text)
    reqs = upstream(stack)
    assert len(reqs) == 1, reqs
    assert reqs[0]["provider"] == family and reqs[0]["status"] == 200
    assert reqs[0]["stream"] is False


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
@pytest.mark.parametrize("fam,model,family", FAMILIES, ids=ids(FAMILIES))
def test_stream(stack, client, fam, model, family, include_usage):
    kw = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], stream=True, **kw
    )
    text, finishes, usage_chunks, content_chunks = "", [], [], 0
    for chunk in stream:
        if chunk.usage is not None:
            usage_chunks.append(chunk)
        else:
            # Clients index choices[0]: only the usage chunk may come without a choice.
            assert chunk.choices, f"a chunk without choices and without usage: {chunk}"
        assert chunk.object == "chat.completion.chunk", chunk
        for c in chunk.choices:
            if c.delta.content:
                text += c.delta.content
                content_chunks += 1
            if c.finish_reason:
                finishes.append(c.finish_reason)
    assert finishes == ["stop"]
    if include_usage:
        assert len(usage_chunks) == 1, "one usage chunk when asked"
        assert usage_chunks[0].choices == [], "the usage chunk has no choices"
        u = usage_chunks[0].usage
        assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    else:
        assert usage_chunks == [], "no usage chunk unless stream_options.include_usage"
    if family is None:
        assert text == f"Hello from Weir's built-in mock provider. You said: {PROMPT}"
        assert content_chunks > 5, "streamed token by token"
        return
    expected = mock_text(family, PROMPT)
    assert text == expected
    assert content_chunks > 1, "streamed in several chunks, not one"
    if include_usage:
        u = usage_chunks[0].usage
        assert (u.prompt_tokens, u.completion_tokens) == mock_usage(PROMPT, expected)
    reqs = upstream(stack)
    assert len(reqs) == 1 and reqs[0]["stream"] is True and reqs[0]["status"] == 200


# === tools ===


def check_calls(calls, expected):
    assert [c.function.name for c in calls] == [name for name, _ in expected]
    for c, (_, args) in zip(calls, expected):
        assert c.type == "function"
        assert c.id, "every call has an id"
        assert json.loads(c.function.arguments) == args
    assert len({c.id for c in calls}) == len(calls), "call ids are distinct"


def collect_stream_calls(stream):
    """Tool calls of a stream, assembled the way clients do (by index)."""
    calls: dict[int, dict] = {}
    finishes = []
    for chunk in stream:
        for c in chunk.choices:
            if c.finish_reason:
                finishes.append(c.finish_reason)
            for tc in c.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "args": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    slot["args"] += tc.function.arguments
    return [calls[i] for i in sorted(calls)], finishes


@pytest.mark.parametrize("fam,model,family", FAMILIES, ids=ids(FAMILIES))
def test_tool_call(stack, client, fam, model, family):
    r = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "what is the weather in Paris?"}],
        tools=openai_tools(WEATHER_TOOL),
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    check_calls(choice.message.tool_calls, [("get_weather", WEATHER_ARGS)])
    if family is not None:
        # Output tokens: one per streamed argument fragment of 4 characters (Cohere adds the
        # words of its tool plan, "I will call get_weather.").
        args = json.dumps(WEATHER_ARGS, separators=(",", ":"))
        plan = 4 if family == "cohere" else 0
        assert r.usage.completion_tokens == -(-len(args) // 4) + plan


@pytest.mark.parametrize("fam,model,family", FAMILIES, ids=ids(FAMILIES))
def test_tool_call_stream(stack, client, fam, model, family):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "what is the weather in Paris?"}],
        tools=openai_tools(WEATHER_TOOL),
        stream=True,
    )
    calls, finishes = collect_stream_calls(stream)
    assert finishes == ["tool_calls"]
    assert [c["name"] for c in calls] == ["get_weather"]
    assert calls[0]["id"]
    assert json.loads(calls[0]["args"]) == WEATHER_ARGS


@pytest.mark.parametrize("fam,model,family", PARALLEL, ids=ids(PARALLEL))
def test_parallel_tool_calls(stack, client, fam, model, family):
    r = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "call both tools in parallel"}],
        tools=openai_tools(WEATHER_TOOL, TIME_TOOL),
    )
    assert r.choices[0].finish_reason == "tool_calls"
    check_calls(
        r.choices[0].message.tool_calls,
        [("get_weather", WEATHER_ARGS), ("get_time", TIME_ARGS)],
    )


@pytest.mark.parametrize("fam,model,family", PARALLEL, ids=ids(PARALLEL))
def test_parallel_tool_calls_stream(stack, client, fam, model, family):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "call both tools in parallel"}],
        tools=openai_tools(WEATHER_TOOL, TIME_TOOL),
        stream=True,
    )
    calls, finishes = collect_stream_calls(stream)
    assert finishes == ["tool_calls"]
    assert [c["name"] for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c["args"]) for c in calls] == [WEATHER_ARGS, TIME_ARGS]
    assert calls[0]["id"] and calls[1]["id"] and calls[0]["id"] != calls[1]["id"]


def test_tool_result_round_trip(stack, client):
    """A tool result sent back is what the provider answers about (OpenAI → Anthropic here)."""
    first = client.chat.completions.create(
        model="claude-3-5-haiku",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=openai_tools(WEATHER_TOOL),
    )
    call = first.choices[0].message.tool_calls[0]
    r = client.chat.completions.create(
        model="claude-3-5-haiku",
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny and 21 degrees"},
        ],
        tools=openai_tools(WEATHER_TOOL),
    )
    assert r.choices[0].message.content == "tool result: sunny and 21 degrees"
    sent = chat_requests(stack.mock)[-1]["body"]["messages"]
    result = [b for m in sent for b in (m["content"] if isinstance(m["content"], list) else [])
              if b.get("type") == "tool_result"]
    assert result and result[0]["tool_use_id"] == call.id


# === embeddings ===

EMBED = [
    ("openai", "text-embedding-3-small"),
    ("azure", "azure-gpt"),
    ("gemini", "text-embedding-004"),
    ("bedrock-titan", "amazon.titan-embed-text-v2"),
    ("cohere", "embed-english-v3.0"),
]


@pytest.mark.parametrize("encoding", ["default", "float"])
@pytest.mark.parametrize("fam,model", EMBED, ids=[e[0] for e in EMBED])
def test_embeddings(stack, client, fam, model, encoding):
    kw = {"encoding_format": "float"} if encoding == "float" else {}
    inputs = ["the quick brown fox", "jumps over"]
    if fam == "bedrock-titan":
        inputs = inputs[:1]  # Titan embeds one text per call
    r = client.embeddings.create(model=model, input=inputs, dimensions=16, **kw)
    assert [d.index for d in r.data] == list(range(len(inputs)))
    for d, text in zip(r.data, inputs):
        assert d.embedding == pytest.approx(mock_embedding(text, 16), abs=1e-6)
    if fam == "gemini":
        # Gemini reports no usage for embeddings: Weir's estimate.
        assert r.usage.prompt_tokens > 0
    else:
        assert r.usage.prompt_tokens == sum(len(t.split()) for t in inputs)


def test_embeddings_inprocess_mock(client):
    a = client.embeddings.create(model="mock-gpt", input=["alpha", "beta", "alpha"],
                                 encoding_format="float", dimensions=12)
    vecs = [d.embedding for d in a.data]
    assert [len(v) for v in vecs] == [12, 12, 12]
    assert vecs[0] == vecs[2] and vecs[0] != vecs[1]
    assert sum(x * x for x in vecs[0]) == pytest.approx(1.0, abs=1e-6)


def test_embeddings_from_anthropic_is_a_bad_request(stack, client):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="claude-3-5-haiku", input="hello")
    assert e.value.status_code == 400
    assert "embeddings" in str(e.value)
    assert chat_requests(stack.mock) == [], "nothing was sent to Anthropic"


# === models ===


def test_models_list(client):
    listed = {m.id: m for m in client.models.list()}
    for name, (provider, _) in MODEL_ROUTES.items():
        assert name in listed, f"{name} is routed but not listed"
        assert listed[name].owned_by == provider
        assert listed[name].object == "model"
