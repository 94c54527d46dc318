#!/usr/bin/env bash
# The test command of the README: installs what the tests need when it is missing, builds the
# binaries, checks formatting and lints, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)   # RSA test keys (tls_downstream)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)   # HTTP/2 load (tests/tests/h2.rs)
# The C example plugin (plugins/examples/c_add_header): clang, wasm-ld, wasi-libc, compiler-rt.
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v wasm-ld >/dev/null 2>&1 || command -v wasm-ld-14 >/dev/null 2>&1 || need_apt+=(lld)
[ -d /usr/include/wasm32-wasi ] || [ -d /usr/share/wasi-sysroot ] || need_apt+=(wasi-libc)
ls /usr/lib/llvm-14/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 \
  || need_apt+=(libclang-rt-14-dev-wasm32)
if ! python3 -c 'import openai, anthropic, pytest, grpc, grpc_tools, h2' >/dev/null 2>&1 \
   && ! python3 -m pip --version >/dev/null 2>&1; then
  need_apt+=(python3-pip)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}"
  else
    echo "tests/run.sh: please install ${need_apt[*]} (apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi
# The client-compatibility suite (tests/sdk) drives the gateway with the official Python SDKs.
if ! python3 -c 'import openai, anthropic, pytest' >/dev/null 2>&1; then
  python3 -m pip install -q 'openai>=3,<4' 'anthropic>=2,<3' pytest \
    || python3 -m pip install -q --break-system-packages 'openai>=3,<4' 'anthropic>=2,<3' pytest
fi
# The gRPC and HTTP/2 tests: a Python gRPC echo service and client (tests/grpc, grpcio with
# grpcio-tools to generate its stubs at test time) and raw HTTP/2 frames (tests/h2, h2 + hpack).
if ! python3 -c 'import grpc, grpc_tools, h2' >/dev/null 2>&1; then
  python3 -m pip install -q 'grpcio>=1.60' 'grpcio-tools>=1.60' 'h2>=4,<5' \
    || python3 -m pip install -q --break-system-packages 'grpcio>=1.60' 'grpcio-tools>=1.60' 'h2>=4,<5'
fi
# The Debian prometheus package starts a server; the tests need only its promtool.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
# Likewise redis-server: the quota tests start their own on a Unix socket.
if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server >/dev/null 2>&1 || true; fi

# The example Wasm plugins the wasm tests load (wasm32-wasip1; adds the Rust target if missing).
rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
plugins/examples/build.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
# The binaries were just built: the SDK suite need not build them again.
WEIR_SDK_SKIP_BUILD=1 python3 -m pytest -q tests/sdk
# Two test threads: the machine has two cores and the integration tests start real processes.
cargo test --workspace -- --test-threads=2
