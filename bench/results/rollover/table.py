"""Prints the rollover A/B table from run.sh's JSON results (argument: its OUT dir)."""
import json
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/roll"
print(f"{'cell':6} {'counter':8} {'round':5} {'ops/s':>9} {'p50 us':>7} {'p99 us':>8} {'p999 us':>8} {'max us':>8}")
for cell in ["8x16", "1x1"]:
    for r in [1, 2, 3]:
        for m in ["default", "1000"]:
            d = json.load(open(f"{out}/r{r}-{m}-{cell}.json"))
            lat = d["latency"]
            print(f"{cell:6} {m:8} {r:5} {d['ops_per_s']:9.0f} {lat['p50_us']:7} {lat['p99_us']:8} "
                  f"{lat['p999_us']:8} {lat['max_us']:8}")
