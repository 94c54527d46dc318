"""Resilience as an SDK user sees it: refused keys skipped and re-admitted, 429 and hanging
providers falling back, streams retried before their first byte and ended with an error the SDK
raises after it. One worker, so key round-robin is deterministic."""

from __future__ import annotations

import time

import anthropic
import openai
import pytest

from conftest import (
    ai_route,
    chat_requests,
    mock_text,
    provider_list,
    start_stack,
)

PROMPT = "tell me something resilient"
MSG = [{"role": "user", "content": PROMPT}]


def providers(mock, tmp):
    m = mock.url
    return provider_list(mock, tmp) + [
        {"name": "keys-openai", "type": "openai", "base_url": f"{m}/v1",
         "keys": [{"id": "a", "value": "sk-key-a"}, {"id": "b", "value": "sk-key-b"}],
         "key_probe_interval": "1s"},
        {"name": "keys-anthropic", "type": "anthropic", "base_url": m,
         "keys": [{"id": "a", "value": "sk-ant-a"}, {"id": "b", "value": "sk-ant-b"}],
         "key_probe_interval": "1s"},
        {"name": "keys-azure", "type": "azure", "base_url": m,
         "azure": {"api_version": "2024-10-21"}, "key_probe_interval": "1s",
         "keys": [{"id": "a", "value": "az-a"}, {"id": "b", "value": "az-b"}]},
        {"name": "keys-gemini", "type": "gemini", "base_url": m, "key_probe_interval": "1s",
         "keys": [{"id": "a", "value": "gm-a"}, {"id": "b", "value": "gm-b"}]},
        {"name": "keys-bedrock", "type": "bedrock", "base_url": m,
         "bedrock": {"region": "us-east-1"}, "key_probe_interval": "1s",
         "keys": [{"id": "a", "access_key_id": "AKIDKEYA", "value": "secret-a"},
                  {"id": "b", "access_key_id": "AKIDKEYB", "value": "secret-b"}]},
        {"name": "fb-primary", "type": "openai", "base_url": f"{m}/v1",
         "keys": [{"value": "sk-fb-primary"}]},
        {"name": "slow", "type": "openai", "base_url": f"{m}/v1", "keys": [{"value": "sk-slow"}],
         "first_byte_timeout": "1s"},
    ]


# Primary provider of the stream-retry routes → (its family, the backup provider and family).
STREAM_PRIMARIES = {
    "openai": ("openai", "anthropic", "anthropic"),
    "anthropic": ("anthropic", "openai", "openai"),
    "gemini": ("gemini", "openai", "openai"),
    "bedrock": ("bedrock", "openai", "openai"),
    "azure": ("azure", "anthropic", "anthropic"),
}


def routes(_mock):
    models = [
        {"model": "keys-gpt", "targets": [{"provider": "keys-openai"}]},
        {"model": "keys-claude", "targets": [{"provider": "keys-anthropic"}]},
        {"model": "keys-azure", "targets": [{"provider": "keys-azure"}]},
        {"model": "keys-gemini", "targets": [{"provider": "keys-gemini"}]},
        {"model": "keys-nova", "targets": [{"provider": "keys-bedrock",
                                            "model": "amazon.nova-lite-v1:0"}]},
        {"model": "fb-429", "targets": [{"provider": "fb-primary", "model": "primary-429"}],
         "fallback": [{"provider": "anthropic", "model": "backup-429"}]},
        {"model": "fb-hang", "targets": [{"provider": "slow", "model": "primary-hang"}],
         "fallback": [{"provider": "anthropic", "model": "backup-hang"}]},
    ]
    for prov, (_fam, backup, _bfam) in STREAM_PRIMARIES.items():
        models.append({"model": f"fbs-{prov}",
                       "targets": [{"provider": prov, "model": f"prim-{prov}"}],
                       "fallback": [{"provider": backup, "model": f"backup-{prov}"}]})
    return [ai_route("llm", "/v1/", models)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("resilience"), routes, providers, workers=1)
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean_mock(stack):
    stack.mock.clear_script()
    stack.mock.clear_requests()


@pytest.fixture(scope="module")
def oai(stack):
    return stack.openai()


def key_log(stack):
    """(key, status) of the calls (POSTs) the mock got, oldest first."""
    return [(r["key"], r["status"]) for r in chat_requests(stack.mock) if r["method"] == "POST"]


def probes(stack):
    """(key, status) of the key probes (GETs) the mock got."""
    return [(r["key"], r["status"]) for r in stack.mock.requests() if r["method"] == "GET"]


# === key pools ===

KEY_POOLS = [
    # (requested model, key A, key B, the status the provider refuses a key with, whether
    # Weir probes it with a GET of the model list, or re-tries it with a real request)
    ("keys-gpt", "sk-key-a", "sk-key-b", 401, "probe"),
    ("keys-claude", "sk-ant-a", "sk-ant-b", 401, "probe"),
    ("keys-azure", "az-a", "az-b", 401, "probe"),
    ("keys-gemini", "gm-a", "gm-b", 403, "probe"),
    ("keys-nova", "AKIDKEYA", "AKIDKEYB", 403, "trial"),
]
POOL_IDS = ["openai", "anthropic", "azure", "gemini", "bedrock"]


@pytest.mark.parametrize("model,key_a,key_b,status,how", KEY_POOLS, ids=POOL_IDS)
def test_refused_key_is_skipped_then_avoided(stack, oai, model, key_a, key_b, status, how):
    stack.mock.script({"match": {"key": key_a}, "status": status})
    r = oai.chat.completions.create(model=model, messages=MSG)
    assert r.choices[0].message.content.startswith("Hello from the mock of")
    assert key_log(stack) == [(key_a, status), (key_b, 200)], \
        "key A refused, the same request retried with key B"
    stack.mock.clear_requests()
    for _ in range(4):
        oai.chat.completions.create(model=model, messages=MSG)
    assert key_log(stack) == [(key_b, 200)] * 4, "the disabled key is left out"


@pytest.mark.parametrize("model,key_a,key_b,status,how", KEY_POOLS, ids=POOL_IDS)
def test_refused_key_is_readmitted_after_probe_interval(
    stack, oai, model, key_a, key_b, status, how
):
    # Disable key A (if the previous test has not already).
    stack.mock.script({"match": {"key": key_a}, "status": status})
    for _ in range(2):
        oai.chat.completions.create(model=model, messages=MSG)
    assert (key_b, 200) in key_log(stack)
    # The provider accepts key A again; after key_probe_interval (1s) it is back in the pool.
    stack.mock.clear_script()
    stack.mock.clear_requests()
    time.sleep(1.2)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        oai.chat.completions.create(model=model, messages=MSG)
        if (key_a, 200) in key_log(stack):
            break
        time.sleep(0.2)
    log = key_log(stack)
    seen = probes(stack)
    assert (key_a, 200) in log, \
        f"key A never used again after its probe interval: calls {log}, probes {seen}"
    if how == "probe":
        assert (key_a, 200) in seen, f"re-admitted by a passing probe: {seen}"
    else:
        assert seen == [], "no probe endpoint: a real request is the trial"
    # Once re-admitted, round-robin uses both keys again.
    stack.mock.clear_requests()
    for _ in range(4):
        oai.chat.completions.create(model=model, messages=MSG)
    assert {k for k, _ in key_log(stack)} == {key_a, key_b}


# === fallback ===


def test_429_falls_back_to_the_next_target(stack, oai):
    stack.mock.script({"match": {"model": "primary-429"}, "status": 429})
    r = oai.chat.completions.create(model="fb-429", messages=MSG)
    assert r.choices[0].message.content == mock_text("anthropic", PROMPT)
    reqs = chat_requests(stack.mock)
    assert [(q["provider"], q["model"], q["status"]) for q in reqs] == [
        ("openai", "primary-429", 429), ("anthropic", "backup-429", 200)]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_hanging_provider_falls_back_after_first_byte_timeout(stack, oai, stream):
    stack.mock.script({"match": {"model": "primary-hang"}, "hang": True})
    t0 = time.monotonic()
    r = oai.chat.completions.create(model="fb-hang", messages=MSG, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in r if c.choices)
    else:
        text = r.choices[0].message.content
    took = time.monotonic() - t0
    assert text == mock_text("anthropic", PROMPT)
    assert 0.9 <= took < 5, f"fell back after the 1s first-byte timeout, took {took:.2f}s"
    assert [q["model"] for q in chat_requests(stack.mock)] == ["primary-hang", "backup-hang"]


# === streams ===

FAILURES = {"reset": {"reset_after_events": 0}, "status500": {"status": 500}}


@pytest.mark.parametrize("how", list(FAILURES))
@pytest.mark.parametrize("prov", list(STREAM_PRIMARIES))
def test_stream_failing_before_first_byte_is_retried(stack, oai, prov, how):
    fam, _backup, bfam = STREAM_PRIMARIES[prov]
    stack.mock.script({"match": {"model": f"prim-{prov}"}, **FAILURES[how]})
    stream = oai.chat.completions.create(
        model=f"fbs-{prov}", messages=MSG, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role]
    finishes = [c.choices[0].finish_reason for c in chunks
                if c.choices and c.choices[0].finish_reason]
    assert text == mock_text(bfam, PROMPT), "one clean stream, all from the backup"
    assert len(roles) == 1 and finishes == ["stop"]
    assert len([c for c in chunks if c.usage]) == 1
    models = [q["model"] for q in chat_requests(stack.mock)]
    assert models[0] == f"prim-{prov}" and models[-1] == f"backup-{prov}"


@pytest.mark.parametrize("prov", list(STREAM_PRIMARIES))
def test_stream_failing_midway_raises_after_partial_text(stack, oai, prov):
    fam = STREAM_PRIMARIES[prov][0]
    # Three records carry text in every format but Anthropic's (message_start,
    # content_block_start and a ping come first).
    events = 5 if prov == "anthropic" else 3
    stack.mock.script({"match": {"model": f"prim-{prov}"}, "reset_after_events": events})
    stream = oai.chat.completions.create(model=f"fbs-{prov}", messages=MSG, stream=True)
    text = ""
    with pytest.raises(openai.APIError) as e:
        for c in stream:
            if c.choices:
                text += c.choices[0].delta.content or ""
    full = mock_text(fam, PROMPT)
    assert text and full.startswith(text) and text != full, f"partial text {text!r}"
    assert "stream" in str(e.value).lower() or "closed" in str(e.value).lower()
    models = [q["model"] for q in chat_requests(stack.mock)]
    assert models == [f"prim-{prov}"], "a stream already under way is not retried elsewhere"


def test_stream_failing_midway_raises_in_the_anthropic_sdk(stack):
    client = stack.anthropic()
    stack.mock.script({"match": {"model": "prim-anthropic"}, "reset_after_events": 5})
    text = ""
    with pytest.raises(anthropic.APIError):
        with client.messages.stream(model="fbs-anthropic", max_tokens=256, messages=MSG) as s:
            for t in s.text_stream:
                text += t
    full = mock_text("anthropic", PROMPT)
    assert text and full.startswith(text) and text != full, f"partial text {text!r}"
    assert [q["model"] for q in chat_requests(stack.mock)] == ["prim-anthropic"]


def test_stream_error_event_midway_raises(stack, oai):
    """The provider's own in-stream error (not a reset) also ends the client's stream with an
    error the SDK raises."""
    stack.mock.script({"match": {"model": "prim-openai"}, "error_after_events": 3,
                       "status": 500})
    text = ""
    with pytest.raises(openai.APIError):
        for c in oai.chat.completions.create(model="fbs-openai", messages=MSG, stream=True):
            if c.choices:
                text += c.choices[0].delta.content or ""
    assert mock_text("openai", PROMPT).startswith(text)
