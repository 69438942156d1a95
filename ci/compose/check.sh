#!/usr/bin/env bash
# kernelyard[cuda] next to other cudarc users: `cargo check` of one small crate per combination
# of cudarc features a final build may have (see docs/EMBEDDING.md):
#   plain            kernelyard alone (bindings from nvcc's version, else the latest)
#   dynamic-linking  candle-core 0.11's exact cudarc features (`dynamic-linking`)
#   cuda-12080       another crate's explicit CUDA version (12.8 bindings)
#   no-nvcc          `cuda-version-from-build-system` with no nvcc on PATH
# Each crate is a workspace of its own (its features are resolved alone), started from the
# repository's Cargo.lock (same versions as the workspace; cargo adds what is missing). They share
# one target directory, target/compose (CARGO_TARGET_DIR overrides it), apart from the main
# target/ so the workspace's build lock is not held. Needs no CUDA toolkit and no network beyond
# crates.io. Usage: ci/compose/check.sh [combination...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/compose}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

combos=("$@")
if [ "${#combos[@]}" = 0 ]; then
  combos=(plain dynamic-linking cuda-12080 no-nvcc)
fi

# PATH without any directory that holds an nvcc (cargo and rustc stay reachable).
path_without_nvcc() {
  local out="" dir
  local IFS=:
  for dir in $PATH; do
    if [ -n "$dir" ] && [ ! -x "$dir/nvcc" ]; then
      out="${out:+$out:}$dir"
    fi
  done
  printf '%s' "$out"
}

failed=()
for combo in "${combos[@]}"; do
  dir="$here/$combo"
  if [ ! -f "$dir/Cargo.toml" ]; then
    echo "ci/compose: no combination '$combo' (expected $dir/Cargo.toml)" >&2
    exit 2
  fi
  if [ ! -f "$dir/Cargo.lock" ]; then
    cp "$root/Cargo.lock" "$dir/Cargo.lock"
  fi
  echo "== compose: $combo"
  env=()
  if [ "$combo" = no-nvcc ]; then
    env=(env -u CUDARC_CUDA_VERSION "PATH=$(path_without_nvcc)")
  fi
  start=$SECONDS
  if ! "${env[@]}" cargo check -q --manifest-path "$dir/Cargo.toml"; then
    echo "ci/compose: FAILED: kernelyard[cuda] does not build next to cudarc as in ci/compose/$combo ($(head -n 1 "$dir/Cargo.toml" | sed 's/^# //'))" >&2
    failed+=("$combo")
    continue
  fi
  # One cudarc in the graph, whatever the other crate asks for.
  count=$(cargo tree -q --manifest-path "$dir/Cargo.toml" -e normal --prefix none -f '{p}' |
    grep -o '^cudarc v[^ ]*' | sort -u | wc -l)
  if [ "$count" != 1 ]; then
    echo "ci/compose: FAILED: ci/compose/$combo resolves $count cudarc versions, expected one" >&2
    cargo tree -q --manifest-path "$dir/Cargo.toml" -d >&2 || true
    failed+=("$combo")
    continue
  fi
  echo "compose $combo: ok ($((SECONDS - start))s)"
done

if [ "${#failed[@]}" != 0 ]; then
  echo "ci/compose: FAILED combinations: ${failed[*]}" >&2
  exit 1
fi
echo "ci/compose: kernelyard[cuda] builds in every combination (${combos[*]})"
