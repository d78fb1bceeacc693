#!/usr/bin/env bash
# Ferry's Paillier and OU beside HEU (sf-heu), python-paillier (phe) and fate_utils, measured
# in one run on this machine. Not part of the test suite. See README.md, "Benchmarks".
#
#   bench/peers/run.sh                       # Ferry as it runs here (+ no-ifma on IFMA CPUs)
#   FERRY_PEERS_BACKENDS="auto no-ifma gmp" bench/peers/run.sh
#   FERRY_BIN=target/release/ferry FERRY_PEERS_QUICK=1 bench/peers/run.sh
#
# Environment:
#   FERRY_PEERS_BACKENDS  Ferry runs, in order: "auto" (what Ferry chooses for this CPU) or a
#                         FERRY_ARITH_BACKEND value (gmp, portable, mpn, ifma, no-adx: as a CPU
#                         without IFMA and without BMI2/ADX, or no-ifma: per
#                         modulus size what a CPU without AVX-512 IFMA chooses). Default: "auto",
#                         plus "no-ifma" when the CPU has IFMA, so that the AVX2-only server's
#                         case shows on an IFMA machine too.
#   FERRY_PEERS_VENV      the virtual environment (default bench/peers/.venv).
#   FERRY_BIN             a built ferry binary (default: cargo build --release, then use it).
#   FERRY_PEERS_ROUNDS    rounds of the whole measurement (every Ferry backend, then the
#                         peers); the table keeps each figure's best round (default 3).
#   FERRY_PEERS_QUICK=1   short timed runs (ferry bench crypto --quick, 0.25 s per run).
#   FERRY_PEERS_CPU       the core to pin every measurement to with taskset (default 0), so
#                         that Ferry and its peers are measured on the same core.
#   FERRY_PEERS_OUT       directory for the raw JSON (default bench/peers/out).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${FERRY_PEERS_VENV:-$here/.venv}"
out="${FERRY_PEERS_OUT:-$here/out}"
cpu="${FERRY_PEERS_CPU:-0}"
mkdir -p "$out"

# Versions that install from PyPI on CPython 3.11 / x86-64 Linux (checked 2026-12-04).
# gmpy2 is phe's optional GMP arithmetic; without it phe runs on Python integers.
PACKAGES=("sf-heu==0.5.2b0" "phe==1.5.0" "fate_utils==0.1.0" "gmpy2==2.3.2")

if [ ! -x "$venv/bin/python" ]; then
    echo "creating the virtual environment $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip || true
fi
for pkg in "${PACKAGES[@]}"; do
    if ! "$venv/bin/python" -m pip install --quiet "$pkg"; then
        echo "warning: $pkg did not install; the table goes on without it" >&2
    fi
done

pin=()
if command -v taskset >/dev/null 2>&1; then
    pin=(taskset -c "$cpu")
fi
# One thread everywhere: the figures are per core.
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1

if [ -z "${FERRY_BIN:-}" ]; then
    (cd "$root" && cargo build --release --quiet -p ferry-cli)
    FERRY_BIN="$root/target/release/ferry"
fi

backends="${FERRY_PEERS_BACKENDS:-auto}"
if [ -z "${FERRY_PEERS_BACKENDS:-}" ] && grep -qw avx512ifma /proc/cpuinfo 2>/dev/null; then
    backends="auto no-ifma"
fi
quick=()
budget=1.0
if [ -n "${FERRY_PEERS_QUICK:-}" ]; then
    quick=(--quick)
    budget=0.25
fi

rounds="${FERRY_PEERS_ROUNDS:-3}"
ferry_args=()
peer_args=()
for r in $(seq 1 "$rounds"); do
    round_args=()
    for b in $backends; do
        file="$out/ferry-$b-$r.json"
        echo "round $r/$rounds: ferry bench crypto (backend: $b)..." >&2
        if [ "$b" = auto ]; then
            env -u FERRY_ARITH_BACKEND "${pin[@]}" "$FERRY_BIN" bench crypto --json "${quick[@]}" >"$file"
        else
            FERRY_ARITH_BACKEND="$b" "${pin[@]}" "$FERRY_BIN" bench crypto --json "${quick[@]}" >"$file"
        fi
        round_args+=(--ferry-json "$file")
    done
    echo "round $r/$rounds: the peers..." >&2
    "${pin[@]}" "$venv/bin/python" "$here/peers.py" "${round_args[@]}" --budget "$budget" \
        --measure-to "$out/peers-$r.json"
    ferry_args+=("${round_args[@]}")
    peer_args+=(--peers-json "$out/peers-$r.json")
done

"$venv/bin/python" "$here/peers.py" "${ferry_args[@]}" "${peer_args[@]}" --json "$out/peers.json"
