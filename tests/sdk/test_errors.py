"""Errors reach SDK users as the SDK's own exception classes: provider 4xx, rate limits with and
without fallback, unknown models, invalid JSON, provider 5xx and refused gateway keys — in the
OpenAI format on OpenAI endpoints and in the Anthropic format on `/v1/messages`."""

from __future__ import annotations

import anthropic
import openai
import pytest

from conftest import (
    MODEL_ROUTES,
    ai_route,
    chat_requests,
    model_routes,
    provider_list,
    start_stack,
)

MSG = [{"role": "user", "content": "hello there"}]


def providers(mock, tmp):
    m = mock.url
    extra = [
        # Each scenario that leaves a key cooling or disabled has providers of its own.
        {"name": "nofb-openai", "type": "openai", "base_url": f"{m}/v1",
         "keys": [{"value": "sk-nofb-openai"}]},
        {"name": "nofb-anthropic", "type": "anthropic", "base_url": m,
         "keys": [{"value": "sk-nofb-anthropic"}]},
        {"name": "rl-a", "type": "openai", "base_url": f"{m}/v1", "keys": [{"value": "sk-rl-a"}]},
        {"name": "rl-b", "type": "anthropic", "base_url": m, "keys": [{"value": "sk-rl-b"}]},
        {"name": "rl-c", "type": "openai", "base_url": f"{m}/v1", "keys": [{"value": "sk-rl-c"}]},
        {"name": "ra-openai", "type": "openai", "base_url": f"{m}/v1",
         "keys": [{"value": "sk-ra"}]},
        {"name": "auth-openai", "type": "openai", "base_url": f"{m}/v1",
         "keys": [{"value": "sk-auth"}]},
    ]
    return provider_list(mock, tmp) + extra


def routes(_mock):
    nofb = [
        {"model": "nofb-gpt", "targets": [{"provider": "nofb-openai"}],
         "fallback": [{"provider": "anthropic", "model": "nofb-unused-backup"}]},
        {"model": "nofb-claude", "targets": [{"provider": "nofb-anthropic"}],
         "fallback": [{"provider": "openai", "model": "nofb-unused-backup"}]},
    ]
    main = model_routes(MODEL_ROUTES) + [
        {"model": "rl-chain", "targets": [{"provider": "rl-a", "model": "rl-a-model"}],
         "fallback": [{"provider": "rl-b", "model": "rl-b-model"}]},
        {"model": "rl-claude", "targets": [{"provider": "rl-c", "model": "rl-c-model"}]},
        {"model": "ra-gpt", "targets": [{"provider": "ra-openai"}]},
        {"model": "auth-gpt", "targets": [{"provider": "auth-openai"}]},
    ]
    return [
        ai_route("nofb", "/nofb/v1/", nofb, fallback_on=[]),
        ai_route("llm", "/v1/", main),
    ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("errors"), routes, providers)
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean_mock(stack):
    stack.mock.clear_script()
    stack.mock.clear_requests()


@pytest.fixture(scope="module")
def oai(stack):
    return stack.openai()


@pytest.fixture(scope="module")
def ant(stack):
    return stack.anthropic()


def upstream_model(requested: str) -> str:
    """The model name the mock sees (Azure: the deployment)."""
    if requested == "azure-gpt":
        return "gpt4o-deployment"
    return MODEL_ROUTES[requested][1] or requested


FAMILY_MODELS = ["gpt-4o-mini", "azure-gpt", "claude-3-5-haiku", "gemini-2.0-flash",
                 "vertex-gemini", "amazon.nova-lite", "command-r"]


# === provider 4xx ===


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", FAMILY_MODELS)
def test_provider_400_is_bad_request_openai(stack, oai, model, stream):
    stack.mock.script({"match": {"model": upstream_model(model)}, "status": 400})
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model=model, messages=MSG, stream=stream)
    assert e.value.status_code == 400
    assert "mock: scripted status 400" in e.value.message
    assert [r["status"] for r in chat_requests(stack.mock)] == [400], "a 400 is not retried"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", FAMILY_MODELS)
def test_provider_400_is_bad_request_anthropic(stack, ant, model, stream):
    stack.mock.script({"match": {"model": upstream_model(model)}, "status": 400})
    with pytest.raises(anthropic.BadRequestError) as e:
        ant.messages.create(model=model, max_tokens=64, messages=MSG, stream=stream)
    assert e.value.status_code == 400
    body = e.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "mock: scripted status 400" in body["error"]["message"]


# === rate limits ===


def test_429_without_fallback_is_rate_limit_openai(stack):
    client = stack.openai("/nofb")
    stack.mock.script({"match": {"model": "nofb-gpt"}, "status": 429})
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="nofb-gpt", messages=MSG)
    assert e.value.status_code == 429
    reqs = chat_requests(stack.mock)
    assert [(r["model"], r["status"]) for r in reqs] == [("nofb-gpt", 429)], \
        "fallback_on: [] — the fallback target is not called"


def test_429_without_fallback_is_rate_limit_anthropic(stack):
    client = stack.anthropic("/nofb")
    stack.mock.script({"match": {"model": "nofb-claude"}, "status": 429})
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="nofb-claude", max_tokens=64, messages=MSG)
    assert e.value.status_code == 429
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert len(chat_requests(stack.mock)) == 1


def test_429_on_the_last_target_is_rate_limit(stack, oai):
    """Both targets of the chain answer 429: the client is told it is rate-limited."""
    stack.mock.script({"match": {"model": "rl-a-model"}, "status": 429},
                      {"match": {"model": "rl-b-model"}, "status": 429})
    with pytest.raises(openai.RateLimitError) as e:
        oai.chat.completions.create(model="rl-chain", messages=MSG)
    assert e.value.status_code == 429
    reqs = chat_requests(stack.mock)
    assert [r["model"] for r in reqs[:2]] == ["rl-a-model", "rl-b-model"]
    assert all(r["status"] == 429 for r in reqs)


def test_429_on_the_only_target_is_rate_limit_anthropic(stack, ant):
    stack.mock.script({"match": {"model": "rl-c-model"}, "status": 429})
    with pytest.raises(anthropic.RateLimitError):
        ant.messages.create(model="rl-claude", max_tokens=64, messages=MSG)
    assert chat_requests(stack.mock)[0]["status"] == 429


def test_429_retry_after_reaches_the_client(stack, oai):
    stack.mock.script({"match": {"model": "ra-gpt"}, "status": 429, "retry_after": 7})
    with pytest.raises(openai.RateLimitError) as e:
        oai.chat.completions.create(model="ra-gpt", messages=MSG)
    assert e.value.response.headers.get("retry-after") is not None, \
        "the provider's Retry-After is passed on (or the key's remaining rest)"


# === gateway-side errors ===


def test_unknown_model_is_not_found(stack, oai, ant):
    with pytest.raises(openai.NotFoundError) as e:
        oai.chat.completions.create(model="no-such-model", messages=MSG)
    assert "no-such-model" in e.value.message
    with pytest.raises(anthropic.NotFoundError) as e2:
        ant.messages.create(model="no-such-model", max_tokens=64, messages=MSG)
    assert e2.value.body["type"] == "error"
    assert e2.value.body["error"]["type"] == "not_found_error"
    assert chat_requests(stack.mock) == []


def test_invalid_json_is_bad_request(stack, oai, ant):
    broken = b'{"model": "gpt-4o-mini", "messages": ['
    with pytest.raises(openai.BadRequestError) as e:
        oai.post("/chat/completions", cast_to=object, content=broken,
                 options={"headers": {"content-type": "application/json"}})
    assert e.value.status_code == 400
    with pytest.raises(anthropic.BadRequestError) as e2:
        ant.post("/v1/messages", cast_to=object, content=broken,
                 options={"headers": {"content-type": "application/json"}})
    assert e2.value.body["error"]["type"] == "invalid_request_error"
    assert chat_requests(stack.mock) == []


def test_missing_model_is_bad_request(stack, oai):
    with pytest.raises(openai.BadRequestError):
        oai.post("/chat/completions", cast_to=object, body={"messages": MSG})


# === provider 5xx and refused keys ===


def test_provider_500_everywhere_is_internal_server_error(stack, oai):
    stack.mock.script({"match": {"model": "gpt-4o-mini"}, "status": 500})
    with pytest.raises(openai.InternalServerError) as e:
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert e.value.status_code >= 500
    reqs = chat_requests(stack.mock)
    assert len(reqs) == 5, "retried up to retry.max_attempts (5)"


def test_refused_gateway_key_keeps_its_status(stack, oai):
    """Every key of the pool refused: the provider's 401 reaches the client as it is, with the
    provider named, so the SDK raises AuthenticationError; the key itself is never shown."""
    stack.mock.script({"match": {"key": "sk-auth"}, "status": 401})
    with pytest.raises(openai.AuthenticationError) as e:
        oai.chat.completions.create(model="auth-gpt", messages=MSG)
    assert e.value.status_code == 401
    assert "auth-openai" in str(e.value)
    assert "sk-auth" not in str(e.value)
