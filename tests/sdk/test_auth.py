"""Consumers and virtual keys seen from the official SDKs: a key made at run time with
`weirctl key create` (on a `weir` attached to `weir-control`) works with the OpenAI and the
Anthropic SDK; a wrong or revoked key raises `AuthenticationError`; a model outside the
consumer's allow-list raises `PermissionDeniedError`."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import anthropic
import openai
import pytest

from conftest import ROOT, TARGET, WEIR, free_port

CONTROL = Path(os.environ.get("WEIR_CONTROL_BIN", TARGET / "debug" / "weir-control"))
WEIRCTL = Path(os.environ.get("WEIRCTL_BIN", TARGET / "debug" / "weirctl"))
MSG = [{"role": "user", "content": "hello there"}]


class ControlledStack:
    """weir-control on a config file, and a `weir --control` plane attached to it."""

    def __init__(self, tmp: Path) -> None:
        if not (CONTROL.exists() and WEIRCTL.exists()):
            subprocess.run(["cargo", "build", "--bins", "-p", "weir-control", "-p", "weirctl"],
                           cwd=ROOT, check=True)
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket = tmp / "control.sock"
        config = {
            "workers": 2,
            "admin": {"address": None},
            "providers": [{"name": "mock", "type": "mock", "mock": {"token_interval": "1ms"},
                           "models": ["mock-gpt", "mock-claude"]}],
            "consumers": [{"name": "team-a", "allow": {"models": ["mock-gpt", "mock-claude"]}}],
            "listeners": [{"name": "main", "address": f"127.0.0.1:{self.port}", "routes": [
                {"name": "llm", "match": {"path": {"prefix": "/v1/"}},
                 "ai": {"models": [{"model": "*", "targets": [{"provider": "mock"}]}]},
                 "filters": [{"type": "auth"}]},
            ]}],
            "clusters": [],
        }
        (tmp / "weir.yaml").write_text(json.dumps(config, indent=2))
        self.daemon_log = open(tmp / "daemon.log", "wb")
        self.daemon = subprocess.Popen(
            [str(CONTROL), "--config", str(tmp / "weir.yaml"), "--socket", str(self.socket),
             "--state-dir", str(tmp / "state")],
            stdout=subprocess.DEVNULL, stderr=self.daemon_log)
        self._wait(lambda: self.weirctl("status", check=False).returncode == 0, "weir-control")
        self.plane_err = tmp / "weir.stderr"
        self._err = open(self.plane_err, "wb")
        self.plane = subprocess.Popen(
            [str(WEIR), "--control", str(self.socket), "--plane-state", str(tmp / "plane")],
            stdout=subprocess.DEVNULL, stderr=self._err)
        self._wait(lambda: "weir: ready" in self.plane_err.read_text(errors="replace"), "weir")

    def _wait(self, ok, what: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{what} did not start")

    def weirctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([str(WEIRCTL), "--socket", str(self.socket), *args],
                           capture_output=True, timeout=60)
        if check:
            assert r.returncode == 0, r.stderr.decode()
        return r

    def new_key(self, key_id: str) -> str:
        out = self.weirctl("-o", "json", "key", "create", "team-a", "--id", key_id, "--wait", "10")
        v = json.loads(out.stdout)
        assert all(p["result"] == "ack" for p in v["planes"]), v
        return v["key"]["secret"]

    def openai(self, key: str):
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=20)

    def anthropic(self, key: str):
        return anthropic.Anthropic(base_url=self.url, api_key=key, max_retries=0, timeout=20)

    def stop(self) -> None:
        for p in (getattr(self, "plane", None), self.daemon):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        self.daemon_log.close()
        if hasattr(self, "_err"):
            self._err.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = ControlledStack(tmp_path_factory.mktemp("auth"))
    yield s
    s.stop()


def test_a_virtual_key_works_with_both_sdks(stack):
    key = stack.new_key("sdk-1")
    r = stack.openai(key).chat.completions.create(model="mock-gpt", messages=MSG)
    assert r.choices[0].message.content
    m = stack.anthropic(key).messages.create(model="mock-claude", max_tokens=32, messages=MSG)
    assert m.content[0].text
    # Streaming too.
    chunks = list(stack.openai(key).chat.completions.create(model="mock-gpt", messages=MSG,
                                                            stream=True))
    assert chunks


def test_a_wrong_key_raises_authentication_error(stack):
    with pytest.raises(openai.AuthenticationError) as e:
        stack.openai("wk-not-a-key").chat.completions.create(model="mock-gpt", messages=MSG)
    assert e.value.status_code == 401
    assert e.value.body["code"] == "invalid_api_key"
    with pytest.raises(anthropic.AuthenticationError) as e:
        stack.anthropic("wk-not-a-key").messages.create(model="mock-claude", max_tokens=8,
                                                        messages=MSG)
    assert e.value.status_code == 401


def test_a_disallowed_model_raises_permission_denied(stack):
    key = stack.new_key("sdk-2")
    with pytest.raises(openai.PermissionDeniedError) as e:
        stack.openai(key).chat.completions.create(model="gpt-4o", messages=MSG)
    assert e.value.body["code"] == "model_not_allowed"
    with pytest.raises(anthropic.PermissionDeniedError):
        stack.anthropic(key).messages.create(model="claude-opus-4", max_tokens=8, messages=MSG)


def test_a_revoked_key_stops_working(stack):
    key = stack.new_key("sdk-3")
    client = stack.openai(key)
    assert client.chat.completions.create(model="mock-gpt", messages=MSG).choices
    stack.weirctl("key", "revoke", "team-a", "sdk-3", "--wait", "10")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="mock-gpt", messages=MSG)
    listing = stack.weirctl("-o", "json", "key", "list", "team-a")
    states = {k["id"]: k["state"] for k in json.loads(listing.stdout)["keys"]}
    assert states["sdk-3"] == "revoked"
    assert key.encode() not in listing.stdout
