#!/usr/bin/env bash
# Builds the `hpl serve` request libFuzzer target with clang++ (not part of the CMake build)
# and fuzzes the JSON body -> request params parser and the HTTP head / chunked body parsers
# for SECONDS (default 60). Seeds: valid and invalid bodies and raw requests written below;
# dictionary: the field names and HTTP tokens. Findings go to $OUT/crashes.
#   usage: tests/fuzz/run-server-fuzz.sh [SECONDS]
#   env: OUT (default build-server-fuzz), JOBS
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-60}
OUT=${OUT:-build-server-fuzz}
CXX=${CXX_FUZZ:-clang++}
mkdir -p "$OUT/seeds" "$OUT/corpus" "$OUT/crashes"

"$CXX" -std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=all -I. tests/fuzz/server_request_fuzz.cc cli/server_openai.cc \
  cli/server_http_parse.cc cli/server_tools.cc runtime/request_checks.cc \
  engine/grammar_constraint.cc grammar/*.cc tokenizer/*.cc \
  -o "$OUT/server_request_fuzz"

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
chat = [
    {"messages": [{"role": "user", "content": "hi"}]},
    {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "a"}]}],
     "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "max_tokens": 16, "stop": ["\n", "x"], "seed": 7,
     "stream": True, "max_completion_tokens": 3, "repeat_penalty": 1.1, "n": 1, "logprobs": False},
    {"messages": [{"role": "system", "content": "only"}]},
    {"messages": [{"role": "user", "content": "x"}], "tools": [], "echo": True},
    {"messages": [{"role": "user", "content": "w"}], "tool_choice": "required",
     "tools": [{"type": "function", "function": {"name": "f", "parameters": {
         "type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}, "required": ["a"]}}}]},
    {"messages": [{"role": "user", "content": "j"}], "response_format": {"type": "json_schema", "json_schema": {
        "schema": {"type": "array", "items": {"enum": [1, "x", None]}, "minItems": 1, "maxItems": 2}}}},
]
text = [
    {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0},
    {"prompt": ["one"], "temperature": 1e308, "presence_penalty": 0, "stream_options": {"include_usage": True}},
    {"prompt": "x", "suffix": "y", "best_of": 2, "logit_bias": {"1": 2}},
    {"prompt": "x", "response_format": {"type": "json_object"}},
]
n = 0
def put(sel, data):
    global n
    open(os.path.join(out, "seeds", "s%04d" % n), "wb").write(bytes([sel]) + data)
    n += 1
for j in chat: put(0, json.dumps(j).encode())
for j in text: put(1, json.dumps(j).encode())
put(1, b'{"prompt": "x", "temperature": 1e999, "stop": [1e999]}')
put(0, b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}')
raw = [
    b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /metrics?format=prometheus&x=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
    b"POST http://h/v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n",
    b"\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
]
for r in raw: put(2, r)
words = ["model", "messages", "prompt", "role", "content", "system", "user", "assistant", "developer", "text", "type",
         "stream", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty",
         "presence_penalty", "frequency_penalty", "n", "logprobs", "seed", "stop", "tools", "echo", "suffix",
         "1e999", "-1e400", "Transfer-Encoding", "chunked", "Content-Length", "Content-Encoding", "Connection",
         "keep-alive", "close", "Expect", "100-continue", "HTTP/1.1", "HTTP/1.0", "\r\n", "\r\n\r\n"]
with open(os.path.join(out, "server.dict"), "w") as f:
    for w in words:
        f.write('"' + "".join("\\x%02X" % ord(c) if c in '\r\n"\\' else c for c in w) + '"\n')
PY

"$OUT/server_request_fuzz" "$OUT/corpus" "$OUT/seeds" -dict="$OUT/server.dict" -max_len=8192 \
  -timeout=20 -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 \
  -artifact_prefix="$OUT/crashes/" ${JOBS:+-jobs=$JOBS}
