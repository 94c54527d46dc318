"""The official Anthropic Python SDK against Weir's `/v1/messages`, one provider family at a
time behind it: messages, streams (the SDK's event accumulator), tool use, usage, count_tokens."""

from __future__ import annotations

import pytest

from conftest import (
    TIME_ARGS,
    TIME_TOOL,
    WEATHER_ARGS,
    WEATHER_TOOL,
    anthropic_tools,
    chat_requests,
    default_stack,
    mock_text,
    mock_usage,
)

PROMPT = "greetings from the anthropic sdk"

FAMILIES = [
    ("anthropic", "claude-3-5-haiku", "anthropic"),
    ("openai", "gpt-4o-mini", "openai"),
    ("azure", "azure-gpt", "azure"),
    ("gemini", "gemini-2.0-flash", "gemini"),
    ("vertex", "vertex-gemini", "vertex"),
    ("bedrock-nova", "amazon.nova-lite", "bedrock"),
    ("bedrock-claude", "anthropic.claude-3-haiku", "bedrock"),
    ("cohere", "command-r", "cohere"),
    ("deepseek", "deepseek-chat", "openai"),
    ("inprocess-mock", "mock-gpt", None),
]
NETWORK = [f for f in FAMILIES if f[2] is not None]


def ids(fams):
    return [f[0] for f in fams]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = default_stack(tmp_path_factory, "anthropic-sdk")
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean_mock(stack):
    stack.mock.clear_script()
    stack.mock.clear_requests()


@pytest.fixture(scope="module")
def client(stack):
    return stack.anthropic()


def expected_text(family):
    if family is None:
        return f"Hello from Weir's built-in mock provider. You said: {PROMPT}"
    return mock_text(family, PROMPT)


@pytest.mark.parametrize("fam,model,family", FAMILIES, ids=ids(FAMILIES))
def test_messages(stack, client, fam, model, family):
    m = client.messages.create(
        model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
    )
    assert m.type == "message" and m.role == "assistant"
    assert m.stop_reason == "end_turn"
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == expected_text(family)
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
    if family is not None:
        assert (m.usage.input_tokens, m.usage.output_tokens) == mock_usage(
            PROMPT, expected_text(family)
        )
        reqs = chat_requests(stack.mock)
        assert len(reqs) == 1 and reqs[0]["provider"] == family and reqs[0]["status"] == 200


@pytest.mark.parametrize("fam,model,family", FAMILIES, ids=ids(FAMILIES))
def test_messages_with_system(stack, client, fam, model, family):
    m = client.messages.create(
        model=model,
        max_tokens=256,
        system="you are terse",
        messages=[{"role": "user", "content": PROMPT}],
    )
    assert m.content[0].text == expected_text(family)
    if family is not None:
        assert (m.usage.input_tokens, m.usage.output_tokens) == mock_usage(
            PROMPT, expected_text(family), system="you are terse"
        )


@pytest.mark.parametrize("fam,model,family", FAMILIES, ids=ids(FAMILIES))
def test_stream(stack, client, fam, model, family):
    with client.messages.stream(
        model=model, max_tokens=256, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected_text(family)
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    if family is not None:
        assert (final.usage.input_tokens, final.usage.output_tokens) == mock_usage(
            PROMPT, expected_text(family)
        )
        reqs = chat_requests(stack.mock)
        assert len(reqs) == 1 and reqs[0]["stream"] is True


@pytest.mark.parametrize("fam,model,family", FAMILIES, ids=ids(FAMILIES))
def test_stream_event_order(client, fam, model, family):
    """The raw events follow Anthropic's grammar: message_start, blocks (start, deltas, stop),
    message_delta with the stop reason and usage, message_stop."""
    stream = client.messages.create(
        model=model, max_tokens=256, stream=True,
        messages=[{"role": "user", "content": PROMPT}],
    )
    kinds = [e.type for e in stream]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert kinds[-2] == "message_delta"
    body = kinds[1:-2]
    assert body[0] == "content_block_start" and body[-1] == "content_block_stop"
    assert set(body[1:-1]) == {"content_block_delta"} and len(body) > 3


def tool_uses(message):
    return [(b.name, b.input) for b in message.content if b.type == "tool_use"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("fam,model,family", FAMILIES, ids=ids(FAMILIES))
def test_tool_use(client, fam, model, family, stream):
    kw = dict(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "what is the weather in Paris?"}],
        tools=anthropic_tools(WEATHER_TOOL),
    )
    if stream:
        with client.messages.stream(**kw) as s:
            m = s.get_final_message()
    else:
        m = client.messages.create(**kw)
    assert m.stop_reason == "tool_use"
    assert tool_uses(m) == [("get_weather", WEATHER_ARGS)]
    ids_ = [b.id for b in m.content if b.type == "tool_use"]
    assert all(ids_)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("fam,model,family", NETWORK, ids=ids(NETWORK))
def test_parallel_tool_use(client, fam, model, family, stream):
    kw = dict(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "use both tools in parallel"}],
        tools=anthropic_tools(WEATHER_TOOL, TIME_TOOL),
    )
    if stream:
        with client.messages.stream(**kw) as s:
            m = s.get_final_message()
    else:
        m = client.messages.create(**kw)
    assert m.stop_reason == "tool_use"
    assert tool_uses(m) == [("get_weather", WEATHER_ARGS), ("get_time", TIME_ARGS)]
    ids_ = [b.id for b in m.content if b.type == "tool_use"]
    assert len(set(ids_)) == 2


@pytest.mark.parametrize("fam,model,family", [NETWORK[0], NETWORK[1], NETWORK[5]],
                         ids=["anthropic", "openai", "bedrock-nova"])
def test_tool_result_round_trip(client, fam, model, family):
    tools = anthropic_tools(WEATHER_TOOL)
    first = client.messages.create(
        model=model, max_tokens=256, tools=tools,
        messages=[{"role": "user", "content": "weather in Paris?"}],
    )
    use = next(b for b in first.content if b.type == "tool_use")
    m = client.messages.create(
        model=model, max_tokens=256, tools=tools,
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            # The documented pattern: the response's content blocks go back as they are.
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                          "content": "sunny and 21 degrees"}]},
        ],
    )
    assert m.content[0].text == "tool result: sunny and 21 degrees"


@pytest.mark.parametrize("model,family", [("claude-3-5-haiku", "anthropic"),
                                          ("mock-gpt", None)], ids=["anthropic", "inprocess-mock"])
def test_count_tokens(client, model, family):
    r = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": PROMPT}])
    if family is None:
        assert r.input_tokens > 0
    else:
        assert r.input_tokens == mock_usage(PROMPT, "")[0]
