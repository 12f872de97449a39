#!/usr/bin/env python3
"""Scrape impact on the veth lab: does scraping /metrics from many threads slow mpgw's
dataplane? The "many parallel scrapes leave dataplane throughput unchanged" check of
issue 7, with more windows than the lab test.

What runs (LAB=scrapebench by default; deploy/lab.sh builds the topology and starts
mpgw with `[metrics] listen = "127.0.0.1:9469"`): one plain TCP transfer from the client
namespace to mpgw's discard service (192.0.2.1:9), measured in WINDOWS windows of
SECONDS, alternately quiet and with THREADS threads scraping /metrics in parallel from
the gateway namespace (each at most once every INTERVAL seconds; 0: back to back), so
that drift hits both kinds alike. mpgw's worker busy-polls
CPU 1; everything else runs on CPU 0 (the sender, the scrapers, the counter reads, and
mpgw's control thread, which serves /metrics from main lcore 0), so the worker keeps its
core and what is measured is the dataplane's slowdown, not a scraper taking the
worker's core. The measurement is `scrape_impact` of deploy/lab/tests/test_metrics.py
(see there). Prints per window the client's goodput, the worker's busy fraction, CPU 0's
busy fraction and the scrape rate, then the median goodput of both kinds and their
ratio (scraping / quiet).

Usage (root): bench/scripts/metrics_scrape_impact.py [--windows 20] [--seconds 1]
[--threads 20] [--interval 0.05]. Environment: MPGW_BIN (default target/release/mpgw; build it with
`DPDK_SYS_REQUIRE=1 cargo build --release -q -p mpgw-control`), LAB (scrapebench).
The lab is torn down on exit.
"""

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.dont_write_bytecode = True
sys.path.insert(0, str(ROOT / "deploy" / "lab" / "tests"))

from conftest import Lab  # noqa: E402
import test_metrics  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=20, help="windows, half of them scraping")
    ap.add_argument("--seconds", type=float, default=1.0, help="length of a window")
    ap.add_argument("--threads", type=int, default=20, help="scraping threads")
    ap.add_argument("--interval", type=float, default=0.05,
                    help="seconds between one thread's scrapes (0: back to back)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    if args.windows < 2 or args.windows % 2:
        sys.exit("--windows must be even and at least 2")
    lab = Lab(os.environ.get("LAB", "scrapebench"),
              os.environ.get("MPGW_BIN", str(ROOT / "target" / "release" / "mpgw")))
    lab.env["MPGW_EXTRA_CONFIG"] = test_metrics.LAB_EXTRA_CONFIG
    up = lab.script("up")
    try:
        if up.returncode != 0:
            sys.exit(f"lab up failed:\n{up.stdout}\n{up.stderr}\n{lab.log()}")
        windows = test_metrics.scrape_impact(lab, args.windows, args.seconds, args.threads,
                                             args.interval)
        quiet, scraping = test_metrics.scrape_impact_summary(windows)
        print(f"scrape impact: {scraping / quiet:.2f} (goodput while {args.threads} threads "
              f"scrape, each every {args.interval:g} s, / quiet; medians of "
              f"{args.windows // 2} windows of {args.seconds:g} s each)")
    finally:
        down = lab.script("down")
        if down.returncode != 0:
            print(f"lab down failed: {down.stderr}", file=sys.stderr)


if __name__ == "__main__":
    main()
