#!/usr/bin/env bash
# Builds every example plugin and copies the modules into plugins/examples/wasm/ under stable names:
#   add_headers.wasm auth_check.wasm body_rewrite.wasm chat_guard.wasm http_callout.wasm
#   shared_counter.wasm (Rust, proxy-wasm SDK, wasm32-wasip1) and c_add_header.wasm (C, clang + wasi-libc).
#
# Idempotent; fails loudly. Installs nothing but the Rust target wasm32-wasip1 (through rustup) when it
# is missing. The C plugin needs Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32 (the
# compiler-rt builtins wasm-ld links): install them yourself, or set SKIP_C=1 to build the Rust ones only.
#
# Env: JOBS (cargo -j, default 2), SKIP_C=1, CLANG (default clang).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
out="$here/wasm"
target=wasm32-wasip1
rust_plugins=(add_headers auth_check body_rewrite chat_guard http_callout shared_counter)

die() { echo "build.sh: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found"
if command -v rustup >/dev/null; then
  if ! rustup target list --installed | grep -qx "$target"; then
    echo "build.sh: adding the Rust target $target (rustup)"
    rustup target add "$target"
  fi
else
  # Without rustup the toolchain must already carry the target's standard library.
  rustc --print target-list | grep -qx "$target" || die "rustc cannot target $target"
fi

mkdir -p "$out"
# This folder is a workspace of its own: its build goes to its own target/, whatever
# CARGO_TARGET_DIR the caller uses for the gateway's workspace.
export CARGO_TARGET_DIR="$here/target"

# --- Rust: one workspace, every plugin a cdylib ---
# --locked: Cargo.lock is committed, so a build never resolves new versions behind our back.
cargo build --release --target "$target" -j "${JOBS:-2}" --locked
for p in "${rust_plugins[@]}"; do
  src="target/$target/release/$p.wasm"
  [ -s "$src" ] || die "$src was not produced"
  cp -f "$src" "$out/$p.wasm.tmp" && mv -f "$out/$p.wasm.tmp" "$out/$p.wasm"
done

# --- C: the ABI by hand, no SDK ---
if [ "${SKIP_C:-0}" != 1 ]; then
  cc="${CLANG:-clang}"
  command -v "$cc" >/dev/null || die "$cc not found (apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32, or SKIP_C=1)"
  command -v wasm-ld >/dev/null || command -v wasm-ld-14 >/dev/null || die "wasm-ld not found (apt-get install -y lld)"
  "$cc" --target=wasm32-wasi -O2 -Wall -Wextra -Werror -mexec-model=reactor -Wl,--strip-all \
    -o "$out/c_add_header.wasm.tmp" c_add_header/plugin.c \
    || die "C plugin failed to build (needs clang, lld, wasi-libc, libclang-rt-14-dev-wasm32)"
  mv -f "$out/c_add_header.wasm.tmp" "$out/c_add_header.wasm"
fi

# Every module must start with the wasm magic and export the ABI version it was built for.
for f in "$out"/*.wasm; do
  head -c 4 "$f" | cmp -s - <(printf '\0asm') || die "$f is not a wasm module"
  grep -q proxy_abi_version_0_2_1 "$f" || die "$f does not export proxy_abi_version_0_2_1"
done
ls -l "$out"/*.wasm
