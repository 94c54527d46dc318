"""Harness of the client-compatibility suite: the real `weir` and `weir-mock-llm` binaries on
loopback, driven by the official OpenAI and Anthropic Python SDKs.

Each test module starts its own mock and gateway (ports picked by the OS), with a config written
into its tmp dir by `write_config`. Mock rules and the request log are process-wide in the mock,
so every test starts with both cleared (the `clean_mock` fixture of each module).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
WEIR = Path(os.environ.get("WEIR_BIN", TARGET / "debug" / "weir"))
MOCK = Path(os.environ.get("WEIR_MOCK_BIN", TARGET / "debug" / "weir-mock-llm"))
TEST_KEY_PEM = ROOT / "dataplane" / "ai-auth" / "testdata" / "test-only-rsa2048-pkcs8.pem"


# === build ===


@pytest.fixture(scope="session", autouse=True)
def binaries() -> None:
    """Builds the two binaries once, unless told they are built (`WEIR_SDK_SKIP_BUILD=1`, or
    `WEIR_BIN` / `WEIR_MOCK_BIN` pointing at other builds)."""
    given = "WEIR_BIN" in os.environ or "WEIR_MOCK_BIN" in os.environ
    if os.environ.get("WEIR_SDK_SKIP_BUILD") != "1" and not given:
        subprocess.run(
            ["cargo", "build", "--bins", "-p", "weir", "-p", "weir-mock-llm"],
            cwd=ROOT,
            check=True,
        )
    for b in (WEIR, MOCK):
        assert b.exists(), f"{b} was not built"


def free_port() -> int:
    """A port the OS just handed out (for weir's listener, which takes a fixed address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# === the mock provider ===


class Mock:
    """`weir-mock-llm` on a port of its own, with its test controls."""

    def __init__(self, log_dir: Path) -> None:
        self.stderr = open(log_dir / "mock.stderr", "wb")
        self.proc = subprocess.Popen(
            [str(MOCK), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        line = self.proc.stdout.readline().decode().strip()  # type: ignore[union-attr]
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"weir-mock-llm did not start: {line!r}")
        self.addr = line.split()[1]
        self.url = f"http://{self.addr}"

    def _call(self, method: str, path: str, body: object | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read()
        return json.loads(text) if text.strip() else None

    def script(self, *rules: dict) -> None:
        """Appends rules (first live matching rule wins)."""
        self._call("POST", "/mock/script", list(rules))

    def clear_script(self) -> None:
        self._call("DELETE", "/mock/script")

    def requests(self) -> list[dict]:
        """What the gateway sent upstream, oldest first."""
        return self._call("GET", "/mock/requests")  # type: ignore[return-value]

    def clear_requests(self) -> None:
        self._call("DELETE", "/mock/requests")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        self.stderr.close()


# === the gateway ===


class Weir:
    """`weir --config FILE`, up once it says it is ready; logs kept in the tmp dir."""

    def __init__(self, config: Path, log_dir: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.stderr_path = log_dir / "weir.stderr"
        self.stdout_path = log_dir / "weir.stdout"
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(
            [str(WEIR), "--config", str(config)],
            stdout=self._out,
            stderr=self._err,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if "weir: ready" in self.log():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        log = self.log()
        self.stop()
        raise RuntimeError(f"weir did not become ready:\n{log}")

    def log(self) -> str:
        """Its diagnostics (stderr) so far."""
        return self.stderr_path.read_text(errors="replace")

    def access_log(self) -> list[dict]:
        """Its access log lines (stdout) so far."""
        out = []
        for line in self.stdout_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._err.close()
        self._out.close()


# === configs ===


def service_account(path: Path, token_url: str) -> Path:
    """A Vertex service-account JSON with a fresh RSA key (or the repo's test-only key)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    except ImportError:
        pem = TEST_KEY_PEM.read_text()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "weir-test",
                "private_key_id": "test-key-1",
                "private_key": pem,
                "client_email": "weir-test@weir-test.iam.gserviceaccount.com",
                "token_uri": token_url,
            }
        )
    )
    return path


def provider_list(mock: Mock, tmp: Path) -> list[dict]:
    """One provider of every family, all pointed at the mock."""
    m = mock.url
    sa = service_account(tmp / "vertex-sa.json", f"{m}/token")
    return [
        {"name": "openai", "type": "openai", "base_url": f"{m}/v1",
         "keys": [{"value": "sk-openai"}], "models": ["gpt-4o-mini"]},
        {"name": "azure", "type": "azure", "base_url": m, "keys": [{"value": "az-key"}],
         "azure": {"api_version": "2024-10-21",
                   "deployments": {"azure-gpt": "gpt4o-deployment"}}},
        {"name": "anthropic", "type": "anthropic", "base_url": m, "keys": [{"value": "sk-ant"}]},
        {"name": "gemini", "type": "gemini", "base_url": m, "keys": [{"value": "gm-key"}]},
        {"name": "vertex", "type": "vertex", "base_url": m, "keys": [{"file": str(sa)}],
         "vertex": {"project": "weir-test", "location": "us-central1",
                    "token_url": f"{m}/token"}},
        {"name": "bedrock", "type": "bedrock", "base_url": m,
         "keys": [{"access_key_id": "AKIDEXAMPLE", "value": "secret"}],
         "bedrock": {"region": "us-east-1"}},
        {"name": "cohere", "type": "cohere", "base_url": m, "keys": [{"value": "co-key"}]},
        {"name": "deepseek", "type": "deepseek", "base_url": f"{m}/deepseek/v1",
         "keys": [{"value": "ds-key"}]},
        {"name": "compat", "type": "openai_compatible", "base_url": f"{m}/compat/v1",
         "keys": [{"value": "compat-key"}]},
        {"name": "mock", "type": "mock", "mock": {"token_interval": "1ms"},
         "models": ["mock-gpt"]},
    ]


# Requested model → (provider, model the provider is called with).
MODEL_ROUTES: dict[str, tuple[str, str | None]] = {
    "gpt-4o-mini": ("openai", None),
    "text-embedding-3-small": ("openai", None),
    "azure-gpt": ("azure", None),
    "claude-3-5-haiku": ("anthropic", "claude-3-5-haiku-20241022"),
    "gemini-2.0-flash": ("gemini", None),
    "text-embedding-004": ("gemini", None),
    "vertex-gemini": ("vertex", "gemini-2.0-flash-001"),
    "amazon.nova-lite": ("bedrock", "amazon.nova-lite-v1:0"),
    "anthropic.claude-3-haiku": ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
    "amazon.titan-embed-text-v2": ("bedrock", "amazon.titan-embed-text-v2:0"),
    "command-r": ("cohere", "command-r-08-2024"),
    "embed-english-v3.0": ("cohere", None),
    "deepseek-chat": ("deepseek", None),
    "compat-model": ("compat", None),
    "mock-gpt": ("mock", None),
}


def model_routes(routes: dict[str, tuple[str, str | None]]) -> list[dict]:
    out = []
    for name, (provider, model) in routes.items():
        target = {"provider": provider}
        if model:
            target["model"] = model
        out.append({"model": name, "targets": [target]})
    return out


def write_config(
    path: Path,
    port: int,
    providers: list[dict],
    routes: list[dict],
    workers: int = 2,
) -> Path:
    """The gateway's config: `routes` are whole route objects of the one listener. JSON is YAML."""
    cfg = {
        "workers": workers,
        "admin": {"address": None},
        "access_log": {"enabled": True},
        "providers": providers,
        "listeners": [{"name": "main", "address": f"127.0.0.1:{port}", "routes": routes}],
        "clusters": [],
    }
    path.write_text(json.dumps(cfg, indent=2))
    return path


def ai_route(name: str, prefix: str, models: list[dict], **extra: object) -> dict:
    return {"name": name, "match": {"path": {"prefix": prefix}},
            "ai": {"models": models, **extra}}


class Stack:
    """A mock, a gateway in front of it, and SDK clients for the gateway."""

    def __init__(self, mock: Mock, weir: Weir) -> None:
        self.mock = mock
        self.weir = weir

    def openai(self, prefix: str = "", **kw: object):
        import openai

        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 20)
        return openai.OpenAI(base_url=f"{self.weir.url}{prefix}/v1", api_key="sk-client", **kw)

    def anthropic(self, prefix: str = "", **kw: object):
        import anthropic

        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 20)
        return anthropic.Anthropic(base_url=f"{self.weir.url}{prefix}", api_key="sk-client", **kw)

    def stop(self) -> None:
        self.weir.stop()
        self.mock.stop()


def start_stack(tmp: Path, build_routes, providers=None, workers: int = 2) -> Stack:
    """Starts a mock, then a gateway whose config `build_routes(mock)` gives the routes of."""
    mock = Mock(tmp)
    try:
        port = free_port()
        provs = providers(mock, tmp) if providers else provider_list(mock, tmp)
        cfg = write_config(tmp / "weir.yaml", port, provs, build_routes(mock), workers)
        weir = Weir(cfg, tmp, port)
    except BaseException:
        mock.stop()
        raise
    return Stack(mock, weir)


def default_stack(tmp_path_factory, name: str) -> Stack:
    tmp = tmp_path_factory.mktemp(name)
    return start_stack(tmp, lambda _m: [ai_route("llm", "/v1/", model_routes(MODEL_ROUTES))])


# === what the mock answers (its documented rules) ===

QUOTE_CHARS = 40
PER_MESSAGE = 4


def mock_text(family: str, user_text: str) -> str:
    """The reply text of weir-mock-llm to one user message."""
    return f"Hello from the mock of {family}: you said: {user_text[:QUOTE_CHARS]}"


def mock_usage(user_text: str, reply_text: str, system: str | None = None) -> tuple[int, int]:
    """(input, output) tokens the mock reports: per message 4 + its words; one token per word."""
    inp = PER_MESSAGE + len(user_text.split())
    if system:
        inp += PER_MESSAGE + len(system.split())
    return inp, len(reply_text.split())


def mock_embedding(text: str, dims: int = 8) -> list[float]:
    """weir-mock-llm's deterministic unit vector: SplitMix64 seeded with FNV-1a of the text."""
    mask = (1 << 64) - 1
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & mask
    raw = []
    state = h
    for _ in range(dims):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        raw.append((z >> 11) / float(1 << 53) * 2.0 - 1.0)
    norm = sum(x * x for x in raw) ** 0.5
    return [x / norm for x in raw]


# Tools offered in tool tests, and the arguments the mock derives from their schemas.
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                       "metric": {"type": "boolean"}},
        "required": ["city", "days", "metric"],
    },
}
TIME_TOOL = {
    "name": "get_time",
    "description": "Local time of a time zone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                   "required": ["tz"]},
}
WEATHER_ARGS = {"city": "sample", "days": 1, "metric": True}
TIME_ARGS = {"tz": "sample"}


def openai_tools(*tools: dict) -> list[dict]:
    return [{"type": "function", "function": t} for t in tools]


def anthropic_tools(*tools: dict) -> list[dict]:
    return [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
            for t in tools]


def chat_requests(mock: Mock) -> list[dict]:
    """The provider requests of the log, without Vertex token exchanges."""
    return [r for r in mock.requests() if not r["path"].startswith("/token")]
