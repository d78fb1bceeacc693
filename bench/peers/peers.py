#!/usr/bin/env python3
"""Ferry's homomorphic encryption beside HEU, python-paillier (phe) and fate_utils.

Run through run.sh, which creates the virtual environment, builds Ferry and runs
`ferry bench crypto --json` in the same invocation; this file measures the peers on the
plaintexts and scalar that Ferry's JSON names (`workload`), with 2048-bit keys, and prints
one table.

Every figure is operations per second on one core: the median of three timed runs of about
`--budget` seconds each, the way `ferry bench crypto` measures. run.sh repeats the whole
measurement (every Ferry backend, then the peers) in several rounds and the table keeps each
figure's best round, so that a burst of load from other processes during one round does not
decide a ratio. Vector APIs (fate_utils) are
measured on vectors of VECTOR_LEN ciphertexts and reported per element, so that the Python call
overhead is not what is measured.
"""

import argparse
import importlib
import json
import platform
import statistics
import sys
import time

# Elements per vector call for libraries whose API works on vectors (fate_utils): long enough
# that one Python call's overhead is a small part of the time, short enough to stay in cache.
VECTOR_LEN = 64
# HEU's Python `Evaluator.mul` takes a C++ int64, so a scalar at or above 2^63 does not fit;
# the peers get Ferry's scalar with its top bit cleared (a 61-bit number here), which costs
# them at most the same squarings as Ferry's 64-bit one.
INT64_MASK = (1 << 63) - 1

OPS = [
    ("paillier", "encrypt"),
    ("paillier", "owner-encrypt"),
    ("paillier", "decrypt"),
    ("paillier", "add"),
    ("paillier", "scalar-mul"),
    ("ou", "encrypt"),
    ("ou", "owner-encrypt"),
    ("ou", "decrypt"),
    ("ou", "add"),
    ("ou", "scalar-mul"),
]


def rate(fn, budget, per_call=1):
    """Median of three runs of `fn` for about `budget` seconds each, in operations/s."""
    rates = []
    for _ in range(3):
        n = 0
        start = time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= budget:
                break
        rates.append(n * per_call / elapsed)
    return statistics.median(rates)


def bench_heu(w, budget):
    from heu import phe

    out = {}
    m, m2, k = w["m"], w["m2"], w["k"] & INT64_MASK
    for scheme, schema in (("paillier", phe.SchemaType.ZPaillier), ("ou", phe.SchemaType.OU)):
        kit = phe.setup(schema, 2048)
        enc, dec, ev = kit.encryptor(), kit.decryptor(), kit.evaluator()
        c1, c2 = enc.encrypt_raw(m), enc.encrypt_raw(m2)
        assert dec.decrypt_raw(c1) == m and dec.decrypt_raw(ev.add(c1, c2)) == m + m2
        assert dec.decrypt_raw(ev.mul(c1, k)) == m * k
        out[(scheme, "encrypt")] = rate(lambda: enc.encrypt_raw(m), budget)
        out[(scheme, "decrypt")] = rate(lambda: dec.decrypt_raw(c1), budget)
        out[(scheme, "add")] = rate(lambda: ev.add(c1, c2), budget)
        out[(scheme, "scalar-mul")] = rate(lambda: ev.mul(c1, k), budget)
    return out, "ZPaillier and OU"


def bench_phe(w, budget):
    from phe import paillier

    m, m2, k = w["m"], w["m2"], w["k"]
    pk, sk = paillier.generate_paillier_keypair(n_length=2048)
    n = pk.n
    # Raw integers (no phe encoding layer), as Ferry's figures are for raw plaintexts.
    c1 = pk.raw_encrypt(m % n)
    c2 = pk.raw_encrypt(m2 % n)
    e1 = paillier.EncryptedNumber(pk, c1)
    e2 = paillier.EncryptedNumber(pk, c2)
    assert sk.raw_decrypt(c1) == m % n
    assert sk.raw_decrypt(e1._raw_add(c1, c2)) == (m + m2) % n
    assert sk.raw_decrypt(e1._raw_mul(k)) == (m * k) % n
    out = {
        ("paillier", "encrypt"): rate(lambda: pk.raw_encrypt(m % n), budget),
        ("paillier", "decrypt"): rate(lambda: sk.raw_decrypt(c1), budget),
        ("paillier", "add"): rate(lambda: e1._raw_add(c1, c2), budget),
        ("paillier", "scalar-mul"): rate(lambda: e1._raw_mul(k), budget),
    }
    del e2
    try:
        import gmpy2  # noqa: F401  (phe uses it when present)

        note = "Paillier only; gmpy2 present"
    except ImportError:
        note = "Paillier only; without gmpy2 (pure Python arithmetic)"
    return out, note


def bench_fate(w, budget):
    import numpy as np
    import fate_utils.ou as fou
    import fate_utils.paillier as fpa

    m, m2, k = w["m"], w["m2"], w["k"] & INT64_MASK
    out = {}
    for scheme, mod in (("paillier", fpa), ("ou", fou)):
        sk, pk, coder = mod.keygen(2048)
        if scheme == "paillier":
            enc, enc_vec, dtype, dec = coder.encode_i64, coder.encode_i64_vec, np.int64, coder.decode_i64
            a, b = m, m2
        else:
            # fate_utils' OU coder takes unsigned 64-bit values only: |m| instead of m.
            enc, enc_vec, dtype, dec = coder.encode_u64, coder.encode_u64_vec, np.uint64, coder.decode_u64
            a, b = abs(m), abs(m2)
        pa = enc(a)
        c1 = pk.encrypt_encoded_scalar(pa, True)
        assert dec(sk.decrypt_to_encoded_scalar(c1)) == a
        v1 = pk.encrypt_encoded(enc_vec(np.array([a] * VECTOR_LEN, dtype=dtype)), True)
        v2 = pk.encrypt_encoded(enc_vec(np.array([b] * VECTOR_LEN, dtype=dtype)), True)
        ks = enc_vec(np.array([k] * VECTOR_LEN, dtype=dtype))
        out[(scheme, "encrypt")] = rate(lambda: pk.encrypt_encoded_scalar(pa, True), budget)
        out[(scheme, "decrypt")] = rate(lambda: sk.decrypt_to_encoded_scalar(c1), budget)
        out[(scheme, "add")] = rate(lambda: v1.add(pk, v2), budget, VECTOR_LEN)
        out[(scheme, "scalar-mul")] = rate(lambda: v1.mul(pk, ks), budget, VECTOR_LEN)
    return out, f"Paillier and OU; add and scalar-mul on vectors of {VECTOR_LEN}, OU on |m|"


PEERS = [
    ("HEU", "heu", bench_heu),
    ("phe", "phe", bench_phe),
    ("fate_utils", "fate_utils", bench_fate),
]


def ferry_rates(report):
    """(scheme, op) → ops/s from `ferry bench crypto --json`: the public-key encryption, the
    CRT decryption, ciphertext + ciphertext and the 64-bit scalar-mul."""
    wanted = {
        "encrypt": "public key (fixed-base randomizer)",
        "decrypt": "CRT",
        "add": "ciphertext + ciphertext",
        "scalar-mul": "64-bit scalar",
    }
    out = {}
    for e in report["entries"]:
        if e["scheme"] in ("paillier", "ou") and wanted.get(e["op"]) == e["variant"]:
            out[(e["scheme"], e["op"])] = e["ops_per_sec_per_core"]
        if e["scheme"] in ("paillier", "ou") and e["op"] == "encrypt" \
                and e["variant"] == "key owner (CRT)":
            out[(e["scheme"], "owner-encrypt")] = e["ops_per_sec_per_core"]
    return out


def peer_rate(rates, key):
    """A peer's rate for `key`. The peers have no key-owner encryption (HEU's, phe's and
    fate_utils' encryptors take the public key only, and it is what SecretFlow's and FATE's
    label holders call), so their "owner-encrypt" is their public-key encryption."""
    rates = rates or {}
    if key[1] == "owner-encrypt":
        return rates.get((key[0], "encrypt"))
    return rates.get(key)


def fmt(r):
    if r is None:
        return "—"
    if r >= 100_000:
        return f"{r / 1000:.0f}k"
    if r >= 10_000:
        return f"{r / 1000:.1f}k"
    return f"{r:.0f}"


def measure(workload, budget):
    """Every peer that imports here: [(label, {(scheme, op): rate} or None, note)]."""
    peers = []
    for label, module, fn in PEERS:
        try:
            importlib.import_module(module)
        except Exception as e:  # not installed, or its wheel does not load here
            print(f"{label}: not available ({e}); continuing without it", file=sys.stderr)
            peers.append((label, None, f"not available: {e}"))
            continue
        print(f"measuring {label}...", file=sys.stderr)
        try:
            rates, note = fn(workload, budget)
        except Exception as e:
            print(f"{label}: failed ({e!r}); continuing without it", file=sys.stderr)
            rates, note = None, f"failed: {e!r}"
        peers.append((label, rates, note))
    return peers


def best(a, b):
    """Per operation, the higher of two rate tables (None when neither has it)."""
    if a is None or b is None:
        return a or b
    return {k: max(v for v in (a.get(k), b.get(k)) if v is not None) for k in set(a) | set(b)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ferry-json", action="append", default=[], metavar="FILE",
                    help="output of `ferry bench crypto --json` (repeat: every backend, every "
                         "round; the best round per backend and operation is kept)")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per timed run")
    ap.add_argument("--measure-to", metavar="FILE",
                    help="measure the peers once, write their rates here and stop (one round)")
    ap.add_argument("--peers-json", action="append", default=[], metavar="FILE",
                    help="rates written by --measure-to (repeat: one per round)")
    ap.add_argument("--json", metavar="FILE", help="also write the table as JSON here")
    args = ap.parse_args()

    ferry = []  # (backend, forced, rates, report), one per backend, best round kept
    for path in args.ferry_json:
        with open(path) as f:
            report = json.load(f)
        # Label a run by FERRY_ARITH_BACKEND when forced (`no-ifma` mixes backends by size).
        forced = report["arithmetic"].get("forced_by_env")
        backend = forced or report["arith_backend"]
        for i, (b, fo, rates, first) in enumerate(ferry):
            if (b, fo) == (backend, forced):
                ferry[i] = (b, fo, best(rates, ferry_rates(report)), first)
                break
        else:
            ferry.append((backend, forced, ferry_rates(report), report))
    if not ferry:
        sys.exit("no Ferry results (--ferry-json)")
    w0 = ferry[0][3]["workload"]
    workload = {"m": int(w0["plaintext"]), "m2": int(w0["plaintext2"]), "k": int(w0["scalar"])}

    if args.measure_to:
        peers = measure(workload, args.budget)
        with open(args.measure_to, "w") as f:
            json.dump([{"label": label, "note": note,
                        "rates": None if r is None else [[s, o, v] for (s, o), v in r.items()]}
                       for label, r, note in peers], f)
        return
    if args.peers_json:
        merged = {}
        for path in args.peers_json:
            with open(path) as f:
                for p in json.load(f):
                    rates = None if p["rates"] is None else {(s, o): v for s, o, v in p["rates"]}
                    old = merged.get(p["label"])
                    merged[p["label"]] = (best(old[0], rates) if old else rates, p["note"])
        peers = [(label, r, note) for label, (r, note) in merged.items()]
    else:
        peers = measure(workload, args.budget)
    rounds = max(1, len(args.peers_json))

    machine = ferry[0][3]["machine"]
    feats = machine["features"]
    print()
    print("Ferry beside HEU, phe and fate_utils — 2048-bit keys, ops/s on one core, same run "
          f"(best of {rounds} round{'s' if rounds > 1 else ''})")
    print(f"machine     {machine['cpu_model']}, {machine['cores']} cores, load average at start "
          f"{machine.get('load_average', '?')}")
    print("features    " + ", ".join(f"{f} {'yes' if feats.get(f) else 'no'}"
                                     for f in ("avx2", "bmi2", "adx", "avx512ifma")))
    for backend, forced, _, report in ferry:
        how = f"FERRY_ARITH_BACKEND={forced}" if forced else "chosen for this CPU"
        print(f"Ferry {backend:<5} {how}: {report['arith_backend']} for Paillier's n² "
              f"(available here: {', '.join(report['arithmetic']['available'])})")
    for label, rates, note in peers:
        print(f"{label:<11} {note}")
    print(f"workload    m = {workload['m']}, m2 = {workload['m2']}, scalar = {workload['k']:#x} "
          f"(HEU and fate_utils: {workload['k'] & INT64_MASK:#x}, their API takes int64)")
    print()

    heu = next((r for label, r, _ in peers if label == "HEU"), None)
    cols = [f"Ferry {b}" for b, _, _, _ in ferry] + [label for label, _, _ in peers]
    cols += [f"{b} / HEU" for b, _, _, _ in ferry]
    header = f"{'operation':<22}" + "".join(f"{c:>14}" for c in cols)
    print(header)
    print("-" * len(header))
    rows = []
    for key in OPS:
        cells = [f[2].get(key) for f in ferry] + [peer_rate(r, key) for _, r, _ in peers]
        ratios = []
        for f in ferry:
            mine, theirs = f[2].get(key), peer_rate(heu, key)
            ratios.append(mine / theirs if mine and theirs else None)
        line = f"{key[0] + ' ' + key[1]:<22}" + "".join(f"{fmt(c):>14}" for c in cells)
        line += "".join(f"{(f'{x:.2f}×' if x else '—'):>14}" for x in ratios)
        print(line)
        rows.append({"scheme": key[0], "op": key[1],
                     "ferry": {f[0]: f[2].get(key) for f in ferry},
                     "peers": {label: peer_rate(r, key) for label, r, _ in peers},
                     "ratio_to_heu": {f[0]: x for f, x in zip(ferry, ratios)}})
    print()
    print("owner-encrypt: encryption by the key holder, as the label holder encrypts its gradients "
          "in SecureBoost and LR;\n  Ferry uses the factorisation (CRT), the peers have no such "
          "path and show their public-key encryption.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "python": platform.python_version(),
                       "ferry_backends": [{"backend": b, "forced_by_env": fo} for b, fo, _, _ in ferry],
                       "peers": {label: note for label, _, note in peers},
                       "workload": {k: str(v) for k, v in workload.items()},
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
