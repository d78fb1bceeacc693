#!/usr/bin/env python3
"""Pooled XGBoost baseline for SecureBoost: same parameters, joined guest + host columns.

Trains XGBoost (hist, 1 thread by default) on the pooled vertical datasets and prints fit time
and training AUC per dataset as JSON, to record beside `examples/vertical_benchmark`.

    pip install xgboost
    python3 crates/ferry-secureboost/bench/xgboost_baseline.py [--datasets DIR] [--threads 1]

Parameters mirror Ferry's defaults (the issue's setting): 10 trees, depth 3, 32 bins, learning
rate 0.3, lambda 1, gamma 0, min_child_weight 1, base score = positive rate. `--trees 20
--depth 5` gives the second setting of the benchmark.
"""
import argparse
import csv
import json
import os
import sys
import time


def read_table(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def load_pooled(datasets, name):
    """Joined features (guest then host, aligned on id) and labels."""
    g_head, g_rows = read_table(os.path.join(datasets, f"{name}_hetero_guest.csv"))
    h_head, h_rows = read_table(os.path.join(datasets, f"{name}_hetero_host.csv"))
    gi, yi = g_head.index("id"), g_head.index("y")
    hi = h_head.index("id")
    host = {r[hi]: r for r in h_rows}
    g_feat = [j for j in range(len(g_head)) if j not in (gi, yi)]
    h_feat = [j for j in range(len(h_head)) if j != hi]

    def num(v):
        return float(v) if v.strip() not in ("", "NA", "nan", "NaN", "null") else float("nan")

    x, y = [], []
    for r in g_rows:
        h = host[r[gi]]
        x.append([num(r[j]) for j in g_feat] + [num(h[j]) for j in h_feat])
        y.append(float(r[yi]))
    return x, y


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=os.path.join(here, "../../../../shared/datasets"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--trees", type=int, default=10)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--bins", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--repeat", type=int, default=5, help="fit this many times, report the median")
    ap.add_argument("names", nargs="*", default=["default_credit", "breast"])
    args = ap.parse_args()
    try:
        import numpy as np
        import xgboost as xgb
    except ImportError as e:
        sys.exit(f"needs numpy and xgboost (pip install xgboost): {e}")

    results = []
    for name in args.names:
        x, y = load_pooled(args.datasets, name)
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        params = {
            "objective": "binary:logistic",
            "tree_method": "hist",
            "max_depth": args.depth,
            "max_bin": args.bins,
            "eta": args.lr,
            "lambda": 1.0,
            "gamma": 0.0,
            "min_child_weight": 1.0,
            "base_score": float(y.mean()),
            "nthread": args.threads,
            "eval_metric": "auc",
        }
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            dtrain = xgb.DMatrix(x, label=y, nthread=args.threads)
            booster = xgb.train(params, dtrain, num_boost_round=args.trees)
            times.append(time.perf_counter() - start)
        auc = float(booster.eval(dtrain).split(":")[-1])
        times.sort()
        results.append(
            {
                "data": name,
                "rows": int(x.shape[0]),
                "features": int(x.shape[1]),
                "xgboost": xgb.__version__,
                "threads": args.threads,
                "trees": args.trees,
                "depth": args.depth,
                "bins": args.bins,
                "learning_rate": args.lr,
                "fit_seconds": times[len(times) // 2],
                "train_auc": auc,
            }
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
