"""`hpl profile`: warm repetitions (median, min..max), per-op percentages sum to ~100, op medians
add up to the median wall time within a stated tolerance, every matmul role appears, modelled
bytes/ops and the roofline, --ctx-depth, --layers, and a --trace that is valid Chrome trace JSON
with properly nested slices per thread."""
import json
import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(REPO, "tests", "data", "models")
ROLES = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "output"}
ALWAYS = ROLES | {"attention", "norm", "rope", "activation", "kv_store", "add", "embedding", "sampling"}
# Within a repetition the op times add up to its wall time (tests/profile_run_test.cc checks
# that to 1e-9). The sum of per-op medians and the median wall time differ by the noise between
# repetitions (on a loaded 2-core machine, by 10x with 2 threads), so it is reported, not asserted.


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin", "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    if "unknown command" in subprocess.run([p, "profile", "--help"], capture_output=True, text=True).stderr:
        pytest.skip("hpl has no profile command")
    return p


def profile(hpl, model, *args):
    r = subprocess.run([hpl, "profile", "-m", os.path.join(MODELS, model), *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


# F32 weights (no activation quantization) and Q8_0 weights (activations -> Q8_0 first)
@pytest.mark.parametrize("model,quantized", [("stories260K.gguf", False),
                                             ("tinyllamas-stories-260k-q8_0.gguf", True)])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_json(hpl, model, quantized, threads):
    j = json.loads(profile(hpl, model, "-p", "40", "-n", "8", "-t", threads, "-r", "3",
                           "--no-roofline", "--json"))
    assert j["n_prompt"] == 40 and j["n_gen"] == 8 and j["n_threads"] == int(threads)
    assert j["reps"] == 3 and "machine" not in j
    assert j["cold"]["load_ms"] > 0 and j["cold"]["first_token_ms"] > 0
    for phase, n in (("prefill", 40), ("decode", 8)):
        ph = j[phase]
        assert ph["n_tokens"] == n and ph["tokens_per_s"] > 0
        assert len(ph["wall_ms_reps"]) == 3
        total_ms = ph["ms"] if phase == "prefill" else ph["ms_per_token"]
        assert ph["ms_min"] <= total_ms <= ph["ms_max"]
        ops = {o["op"]: o for o in ph["ops"]}
        assert len(ops) == len(ph["ops"])  # each kind once
        assert ALWAYS <= set(ops), sorted(ops)
        assert ("quantize_act" in ops) == quantized
        assert abs(sum(o["pct"] for o in ph["ops"]) - 100.0) < 0.01
        assert abs(sum(o["ms"] for o in ph["ops"]) - ph["ops_sum_ms"]) < 1e-6 * total_ms + 1e-9
        pcts = [o["pct"] for o in ph["ops"]]
        assert pcts == sorted(pcts, reverse=True)
        for o in ph["ops"]:
            assert o["ms_min"] <= o["ms"] <= o["ms_max"]
            assert o["kind"] == ("matmul" if o["op"] in ROLES else o["op"])
            modelled = o["op"] not in ("sampling", "other")
            assert (o["bytes"] > 0) == modelled, o
        assert ops["attn_q"]["compute"] == ("int8" if quantized else "f32")
        # most of the time is covered by a hook, not "other"
        assert ph["hooked_fraction"] > 0.5


def test_roofline_depths_layers(hpl):
    j = json.loads(profile(hpl, "stories260K.gguf", "-p", "16", "-n", "4", "-t", "1", "-r", "2",
                           "--ctx-depth", "0,40", "--layers", "--json"))
    m = j["machine"]
    assert m["read_gbps"] > 0 and m["int8_gops"] > 0 and m["f32_gops"] > 0
    depths = [d["depth"] for d in j["decode_depths"]]
    assert depths == [0, 40] and j["decode"]["depth"] == 0
    # Attention reads more of the cache, and does more work, at depth 40.
    att = [{o["op"]: o for o in d["ops"]}["attention"] for d in j["decode_depths"]]
    assert att[1]["bytes"] > att[0]["bytes"] and att[1]["ops"] > att[0]["ops"]
    # Weights do not depend on depth.
    q = [{o["op"]: o for o in d["ops"]}["attn_q"] for d in j["decode_depths"]]
    assert q[0]["bytes"] == q[1]["bytes"]
    for o in j["prefill"]["ops"]:
        if o["op"] not in ("sampling", "other"):
            assert o["roof_pct"] > 0 and o["bound"] in ("memory", "compute")
    layers = j["prefill"]["layers"]
    assert [l["layer"] for l in layers] == list(range(5))
    for l in layers:
        assert l["ms"] > 0 and l["kind"].startswith("global")
        assert l["attn_mm"] + l["attention"] + l["ffn_mm"] + l["rest"] <= l["ms"] * (1 + 1e-6) + 1e-9


@pytest.mark.parametrize("threads", ["1", "2"])
def test_trace(hpl, tmp_path, threads):
    path = tmp_path / "trace.json"
    profile(hpl, "stories260K.gguf", "-p", "20", "-n", "3", "-t", threads, "-r", "2", "--ubatch", "8",
            "--no-roofline", "--trace", str(path))
    t = json.loads(path.read_text())
    ev = t["traceEvents"]
    meta = [e for e in ev if e["ph"] == "M"]
    slices = [e for e in ev if e["ph"] == "X"]
    assert len(meta) + len(slices) == len(ev)
    tids = {e["tid"] for e in slices}
    assert {e["tid"] for e in meta} == tids  # every track is named
    phases = [e for e in slices if e["cat"] == "phase"]
    assert [p["name"] for p in phases] == ["prefill", "decode @20"]
    layers = [e for e in slices if e["cat"] == "layer"]
    assert len(layers) == 5 * (3 + 3)  # 5 layers per eval: 3 micro-batches, 3 decode tokens
    mm = [e for e in slices if e["cat"] == "matmul"]
    for e in mm:
        a = e["args"]
        assert a["role"] in ROLES and a["type"] == "f32" and a["isa"]
        assert re.fullmatch(r"\d+x\d+ @ \d+ tok", a["shape"]) and re.fullmatch(r"\d+\.\.\d+", a["rows"])
    roles = {e["name"] for e in mm}
    assert roles == ROLES
    if threads == "1":
        assert len(mm) == 3 * 35 + 1 + 3 * 36
    # Per thread: slices are disjoint or nested (a child ends within its parent).
    eps = 1e-3  # microseconds: the JSON holds ns / 1000 as doubles
    for tid in tids:
        mine = sorted((e for e in slices if e["tid"] == tid), key=lambda e: (e["ts"], -e["dur"]))
        stack = []
        for e in mine:
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"] + eps:
                stack.pop()
            if stack:
                assert e["ts"] + e["dur"] <= stack[-1]["ts"] + stack[-1]["dur"] + eps, (stack[-1], e)
                assert stack[-1]["cat"] in ("phase", "layer")
            stack.append(e)


def test_table(hpl):
    out = profile(hpl, "stories260K.gguf", "-p", "16", "-n", "4", "-t", "2", "-r", "2",
                  "--ctx-depth", "0,8", "--layers")
    assert re.search(r"^cold: load [0-9.]+ ms", out, re.M)
    assert re.search(r"^machine: read [0-9.]+ GB/s", out, re.M)
    for phase in ("prefill: 16 tokens", "decode @0: 4 tokens", "decode @8: 4 tokens",
                  "prefill by layer", "decode @8 by layer"):
        assert phase in out
    blocks = re.split(r"\n(?=decode @\d+: )", out.split("\nprefill by layer")[0])
    assert len(blocks) == 3
    for b in blocks:
        rows = re.findall(r"^  (mm \w+|\w+)\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)%", b, re.M)
        names = {n.removeprefix("mm ") for n, _ in rows}
        assert ROLES <= names
        assert abs(sum(float(p) for _, p in rows) - 100.0) < 0.5


def test_errors(hpl):
    def fails(*args):
        r = subprocess.run([hpl, "profile", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        return r.stderr
    model = os.path.join(MODELS, "stories260K.gguf")
    assert "-p" in fails("-m", model, "-p", "0")
    assert "-m MODEL" in fails()
    assert "--reps" in fails("-m", model, "-r", "0")
    assert "--ctx-depth" in fails("-m", model, "--ctx-depth", "0,-5")
    assert "--ctx-depth" in fails("-m", model, "--ctx-depth", "a")


def test_one_rep_adds_up(hpl):
    # One repetition: the op times, "other" included, are that run's wall time.
    j = json.loads(profile(hpl, "stories260K.gguf", "-p", "24", "-n", "4", "-t", "2", "-r", "1",
                           "--no-roofline", "--json"))
    for phase, key in (("prefill", "ms"), ("decode", "ms_per_token")):
        ph = j[phase]
        assert abs(ph["ops_sum_ms"] - ph[key]) <= 1e-6 * ph[key]
        assert ph["wall_ms_reps"] == [ph[key]]


def test_plot(hpl, tmp_path):
    import xml.dom.minidom
    path = tmp_path / "p.svg"
    j = json.loads(profile(hpl, "stories260K.gguf", "-p", "16", "-n", "2", "-t", "1", "-r", "1",
                           "--ctx-depth", "0,20", "--plot", str(path), "--json"))
    doc = xml.dom.minidom.parse(str(path))
    texts = [t.firstChild.data for t in doc.getElementsByTagName("text")]
    assert any(t.startswith("int8 peak") for t in texts) and any(t.startswith("read ") for t in texts)
    modelled = lambda ph: [o for o in ph["ops"] if o["bytes"] > 0 and o["ops"] > 0]
    # A filled point per modelled op of the prefill, a hollow one (two circles) per decode op.
    n = len(modelled(j["prefill"])) + 2 * sum(len(modelled(d)) for d in j["decode_depths"])
    assert len(doc.getElementsByTagName("circle")) == n
    # Every op kind with time is in the legend.
    kinds = {o["op"] for ph in [j["prefill"], *j["decode_depths"]] for o in ph["ops"]}
    assert kinds <= set(texts)
