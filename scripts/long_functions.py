#!/usr/bin/env python3
"""Lists C++ functions longer than a limit (default 80 lines) in the project's sources.

A long function is accepted when a comment within the 3 lines above its signature contains
"long-function:" followed by the reason. Exits 1 when an unexplained one is found.

  python3 scripts/long_functions.py [--limit N] [--all] [DIR...]

A heuristic brace matcher, not a parser: it skips comments, string and character literals,
and treats a `{` whose header (the text since the previous `;`, `{` or `}`) has a `)` as the
start of a function, unless it is a control statement or already inside a function (lambdas
and blocks count towards their enclosing function).
"""
import argparse
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRS = ["kernel", "gguf", "engine", "tokenizer", "runtime", "tools", "cli", "bindings"]
CONTROL = re.compile(r"^\s*(if|for|while|switch|catch|else|do|try|return)\b")
MARK = "long-function:"


def strip_code(text):
    """The text with comments and literals blanked (newlines kept, so lines still count)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    """(name, first line, line count) of each function in path."""
    src = open(path, encoding="utf-8", errors="replace").read()
    # Preprocessor lines (and their continuations) blanked too.
    code = re.sub(r"(?m)^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", lambda m: re.sub(r"[^\n]", " ", m.group(0)),
                  strip_code(src))
    stack, header, line, found = [], "", 1, []
    for c in code:
        if c == "\n":
            line += 1
        if c == "{":
            in_func = any(kind == "func" for kind, _, _ in stack)
            h = " ".join(header.split())
            is_type = re.search(r"\b(namespace|class|struct|union|enum)\b", h) and not re.search(
                r"\)\s*(const\s*)?(noexcept\s*)?(override\s*)?$", h)
            if not in_func and not is_type and ")" in h and not CONTROL.match(h) and not h.startswith("="):
                m = re.search(r"([\w:~<>=!+\-*/\[\]]+)\s*\(", h)
                stack.append(("func", line, m.group(1) if m else h[:40]))
            else:
                stack.append(("other", line, ""))
            header = ""
        elif c == "}":
            if stack:
                kind, start, name = stack.pop()
                if kind == "func":
                    found.append((name, start, line - start + 1))
            header = ""
        elif c == ";":
            header = ""
        else:
            header += c
    lines = src.splitlines()
    return [(name, start, n, lines) for name, start, n in found]


def explained(lines, start):
    """A long-function: comment within the 3 lines above the signature's first line."""
    lo = max(0, start - 8)
    return any(MARK in l for l in lines[lo:start])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=80)
    ap.add_argument("--all", action="store_true", help="also list explained ones")
    ap.add_argument("dirs", nargs="*", default=DIRS)
    args = ap.parse_args()
    bad = 0
    for d in args.dirs:
        for root, _, files in os.walk(os.path.join(REPO, d)):
            for f in sorted(files):
                if not f.endswith((".cc", ".h", ".cpp")):
                    continue
                path = os.path.join(root, f)
                for name, start, n, lines in functions(path):
                    if n <= args.limit:
                        continue
                    ok = explained(lines, start)
                    bad += not ok
                    if args.all or not ok:
                        rel = os.path.relpath(path, REPO)
                        print(f"{rel}:{start}: {name}: {n} lines{'' if not ok else ' (explained)'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
