#!/usr/bin/env python3
"""Fails when an #include runs back up a layer (DESIGN.md, "Layers").

Each source folder has a rank; a file may include its own folder and folders of a lower
rank, never a higher one, nor a different folder of the same rank. gguf/ may include only
kernel/types.h from kernel/. Prints every back-arrow as FILE:LINE: folder -> included and
exits 1 if there is one.

  python3 scripts/check_layers.py
"""
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# folder -> rank; lower ranks are further down (included by the ones above).
RANK = {
    "kernel": 0,
    "tokenizer": 0,
    "gguf": 1,
    "grammar": 1,
    "engine": 2,
    "runtime": 3,
    "tools": 3,
    "cli": 4,
    "bindings": 4,
}
# Narrower allowances: folder -> {lower folder: the only headers it may include from it}.
# The bindings reach everything through the runtime.
ONLY = {"gguf": {"kernel": {"kernel/types.h"}},
        "bindings": {f: set() for f in ("kernel", "tokenizer", "gguf", "engine", "tools")}}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
SOURCES = (".h", ".cc", ".c", ".cpp", ".inc")


def back_arrows(repo=REPO):
    """[(path, line, folder, included)] of every include that breaks the layering."""
    bad = []
    for folder in RANK:
        for root, _, files in os.walk(os.path.join(repo, folder)):
            for f in sorted(files):
                if not f.endswith(SOURCES):
                    continue
                path = os.path.join(root, f)
                text = open(path, encoding="utf-8", errors="replace").read()
                for m in INCLUDE.finditer(text):
                    inc = m.group(1)
                    target = inc.split("/", 1)[0]
                    if "/" not in inc or target not in RANK or target == folder:
                        continue  # same folder, a relative include, or not ours
                    ok = RANK[target] < RANK[folder]
                    only = ONLY.get(folder, {}).get(target)
                    if ok and only is not None:
                        ok = inc in only
                    if not ok:
                        line = text.count("\n", 0, m.start()) + 1
                        bad.append((os.path.relpath(path, repo), line, folder, inc))
    return bad


def main():
    bad = back_arrows()
    for path, line, folder, inc in bad:
        print(f"{path}:{line}: {folder}/ includes {inc} (a back-arrow; see DESIGN.md)")
    if not bad:
        print("layers: no include runs back up a layer")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
