"""Cost of swapping models under a memory budget (Python binding over libhpl): a generation
model and an embedding model, requests alternating, with no budget and with a budget that
holds only the generation model (so every request unloads the other model and loads its own).
Rounds interleave the two settings; prints medians per round and /proc/loadavg.

    PYTHONPATH=bindings/python HPL_LIB=build/lib/libhpl.so \
        python3 bench/swap_budget.py GEN.gguf EMBED.gguf
"""
import os
import statistics
import sys
import time

import hpl

G, B = sys.argv[1], sys.argv[2]
print(open("/proc/loadavg").read().strip())
gen = hpl.Model(G, n_ctx=512, n_threads=2)
emb = hpl.Model(B, n_ctx=512, n_threads=2)
texts = ["search notes, messages and documents on the phone"] * 8
for rnd in range(3):
    for budget in (0, os.path.getsize(G) + 65536):
        hpl.set_memory_budget(budget)
        lg, le = [], []
        for _ in range(5):
            t = time.perf_counter()
            gen.generate("Once upon a time", max_tokens=4, temperature=0)
            lg.append(time.perf_counter() - t)
            t = time.perf_counter()
            emb.embed(texts)
            le.append(time.perf_counter() - t)
        print(f"round {rnd} budget {budget or 'unlimited'}: generate (4 tokens) median "
              f"{statistics.median(lg) * 1e3:.1f} ms, embed (8 texts) median {statistics.median(le) * 1e3:.1f} ms")
print(open("/proc/loadavg").read().strip())
