#!/usr/bin/env python3
"""Load time and peak RSS of one model three ways: the plain GGUF with HPL_REPACK=0 (GGUF
layout), the plain GGUF repacked at load (heap copy, mapped pages released), and the file
written by `hpl pack` (packed tensors used in place from the mapping).

    python3 bench/pack_load.py MODEL.gguf [MODEL2.gguf ...] [--rounds 5] [--no-cold]

Per round and model, the three ways run interleaved (A, B, C), each cold (page cache dropped
with `echo 3 > /proc/sys/vm/drop_caches`, needs root; without it, say so with --no-cold) and
then warm (the same run again at once). Each run is `hpl run -m M -p Hello -n 8 -t 2 -v`;
from its log: `load` (open, validate, map, build the weights, repack or not), `first token`
(load + the prompt's evaluation: a packed file's pages fault in here instead of at load), and
the peak RSS (VmHWM), and the peak anonymous RSS (RssAnon polled every 5 ms: heap the kernel
cannot drop under memory pressure, unlike clean file pages of the mapping). Prints medians and min-max per way, and the load average before and
after. The packed copy is written next to MODEL as MODEL.packed.gguf (kept for reruns), or
under --out DIR.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_once(hpl, model, env_extra, cold):
    if cold:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    env = dict(os.environ)
    env.pop("HPL_REPACK", None)
    env.update(env_extra)
    p = subprocess.Popen([hpl, "run", "-m", model, "-p", "Hello", "-n", "8", "-t", "2", "-v"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    anon = 0  # peak anonymous (heap) RSS, polled: memory the kernel cannot page back to the file
    status = f"/proc/{p.pid}/status"
    err = ""
    while p.poll() is None:
        try:
            m = re.search(r"RssAnon:\s+(\d+) kB", open(status).read())
            anon = max(anon, int(m.group(1)) if m else 0)
        except OSError:
            pass
        time.sleep(0.005)
    err = p.stderr.read()
    if p.returncode != 0:
        sys.exit(f"hpl run failed on {model}: {err[-500:]}")
    load = float(re.search(r"^load: ([\d.]+) ms", err, re.M).group(1))
    prompt = float(re.search(r"^prompt: \d+ tokens in ([\d.]+) ms", err, re.M).group(1))
    rss = float(re.search(r"peak RSS ([\d.]+) MiB", err).group(1))
    return load, load + prompt, rss, anon / 1024.0


def fmt(xs, unit):
    return f"{statistics.median(xs):8.1f} {unit} ({min(xs):.1f}-{max(xs):.1f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    hpl = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    print("loadavg before:", open("/proc/loadavg").read().strip())
    for model in a.models:
        base = os.path.basename(model)[:-len(".gguf")]
        packed = os.path.join(a.out or os.path.dirname(model), base + ".packed.gguf")
        if not os.path.exists(packed):
            subprocess.run([hpl, "pack", model, packed], check=True, capture_output=True)
        ways = [("plain, HPL_REPACK=0", model, {"HPL_REPACK": "0"}),
                ("plain, repacked at load", model, {}),
                ("packed file (hpl pack)", packed, {})]
        res = {(w[0], c): [] for w in ways for c in ("cold", "warm")}
        for _ in range(a.rounds):
            for name, path, env in ways:
                if not a.no_cold:
                    res[(name, "cold")].append(run_once(hpl, path, env, True))
                res[(name, "warm")].append(run_once(hpl, path, env, False))
        print(f"\n{model} ({os.path.getsize(model) / 2**20:.1f} MiB), {a.rounds} rounds, "
              "medians (min-max)")
        print(f"{'way':26} {'cache':5} {'load':>24} {'load + first prompt':>26} {'peak RSS':>26} "
              f"{'peak anon RSS (polled)':>26}")
        for name, _, _ in ways:
            for c in ("cold", "warm"):
                r = res[(name, c)]
                if not r:
                    continue
                print(f"{name:26} {c:5} {fmt([x[0] for x in r], 'ms'):>24} "
                      f"{fmt([x[1] for x in r], 'ms'):>26} {fmt([x[2] for x in r], 'MiB'):>26} "
                      f"{fmt([x[3] for x in r], 'MiB'):>26}")
    print("\nloadavg after:", open("/proc/loadavg").read().strip())


if __name__ == "__main__":
    main()
