"""Constrained output: every sampled generation (tiny models, many seeds, temperature 1 with
no truncation, so only the grammar decides) parses as JSON and validates against its schema;
bad grammars and schemas are refused with their position / JSON pointer by the CLI."""
import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(REPO, "tests", "data", "models")
BIN = os.path.join(os.environ.get("HPL_BUILD_DIR", os.path.join(REPO, "build")), "bin")
# Vocabularies that can spell any text (byte-fallback tokens): SPM 512 and Llama's 32000.
TINY = ["stories260K.gguf", "tinyllamas-stories-260k-q8_0.gguf", "TinyLLama-v0.Q4_0.from-ggmlv3.gguf"]

# Bounded schemas: every string, array and number has a maximum length, so every generation
# must reach the end of its grammar (where only end-of-generation is allowed) within the limit.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 8},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"enum": ["red", "blue", 7, None]}, "maxItems": 3},
        "ok": {"type": ["boolean", "null"]},
        "kind": {"const": "person"},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
POINTS = {
    "type": "array",
    "minItems": 1,
    "maxItems": 3,
    "items": {"$ref": "#/$defs/pt"},
    "$defs": {
        "pt": {
            "type": "object",
            "properties": {
                "x": {"type": "number"},
                "y": {"type": "integer"},
                "label": {"anyOf": [{"type": "string", "maxLength": 4}, {"type": "null"}]},
            },
            "required": ["x", "y"],
            "additionalProperties": False,
        }
    },
}


def validate(v, s, root=None, at="#"):
    """A validator for the subset the converter supports; raises AssertionError naming where."""
    root = root if root is not None else s
    if s is True or s == {}:
        return
    if "$ref" in s:
        name = s["$ref"].split("/")[-1]
        return validate(v, root if s["$ref"] == "#" else root["$defs"][name], root, at)
    if "const" in s:
        assert v == s["const"] and type(v) == type(s["const"]), at
        return
    if "enum" in s:
        assert any(v == e and type(v) == type(e) for e in s["enum"]), at
        return
    if "anyOf" in s:
        errs = []
        for alt in s["anyOf"]:
            try:
                return validate(v, alt, root, at)
            except AssertionError as e:
                errs.append(str(e))
        raise AssertionError(f"{at}: no anyOf alternative: {errs}")
    types = s.get("type")
    types = [types] if isinstance(types, str) else types
    if types is not None:
        kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
        ok = False
        for t in types:
            if t == "integer":
                ok |= isinstance(v, int) and not isinstance(v, bool)
            elif t == "number":
                ok |= isinstance(v, (int, float)) and not isinstance(v, bool)
            else:
                ok |= isinstance(v, kinds[t])
        assert ok, f"{at}: {v!r} is not {types}"
    if isinstance(v, dict):
        props = s.get("properties", {})
        for r in s.get("required", []):
            assert r in v, f"{at}: missing {r}"
        if s.get("additionalProperties") is False:
            assert set(v) <= set(props), f"{at}: extra {set(v) - set(props)}"
        for k, x in v.items():
            if k in props:
                validate(x, props[k], root, f"{at}/properties/{k}")
    if isinstance(v, list):
        assert len(v) >= s.get("minItems", 0), at
        assert len(v) <= s.get("maxItems", len(v)), at
        for i, x in enumerate(v):
            validate(x, s.get("items", True), root, f"{at}/{i}")
    if isinstance(v, str):
        assert s.get("minLength", 0) <= len(v) <= s.get("maxLength", len(v)), f"{at}: length"


def test_validator_catches_bad_values():
    validate({"name": "a", "age": 3}, PERSON)
    for bad in [{"name": "a"}, {"name": "", "age": 1}, {"name": "a", "age": 1.5},
                {"name": "a", "age": 1, "x": 1}, {"name": "a", "age": 1, "tags": ["green"]},
                {"name": "a", "age": 1, "tags": [7, 7, 7, 7]}, {"name": "a", "age": True}]:
        with pytest.raises(AssertionError):
            validate(bad, PERSON)
    with pytest.raises(AssertionError):
        validate([{"x": 1, "y": 2, "label": "toolong"}], POINTS)


@pytest.fixture(scope="module")
def gen():
    p = os.path.join(BIN, "grammar_generate")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    return p


def generate(gen, tmp_path, model, schema, n, max_tokens, seed0):
    args = [gen, os.path.join(MODELS, model)]
    if schema is None:
        args.append("--json")
    else:
        f = tmp_path / "schema.json"
        f.write_text(json.dumps(schema))
        args += ["--json-schema", str(f)]
    r = subprocess.run(args + [str(n), str(max_tokens), str(seed0)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.splitlines():
        finish, text = line.split(" ", 1)
        out.append((finish, json.loads(text)))
    assert len(out) == n
    return out


@pytest.mark.parametrize("model", TINY)
@pytest.mark.parametrize("name,schema", [("person", PERSON), ("points", POINTS)])
def test_every_generation_validates(gen, tmp_path, model, name, schema):
    seed0 = int.from_bytes(os.urandom(4), "little")  # new seeds every run (printed on failure)
    for finish, text in generate(gen, tmp_path, model, schema, 30, 400, seed0):
        assert finish == "end_of_generation", (seed0, finish, text)
        validate(json.loads(text), schema)


@pytest.mark.parametrize("model", TINY[:2])  # (TinyLLama's run alone took a minute under load)
def test_json_mode_outputs_objects(gen, tmp_path, model):
    # Any JSON object: unbounded, so a random tiny model often runs past the limit (its output
    # is then a prefix); every one that ended must be an object.
    seed0 = int.from_bytes(os.urandom(4), "little")
    for finish, text in generate(gen, tmp_path, model, None, 20, 150, seed0):
        if finish == "end_of_generation":
            assert isinstance(json.loads(text), dict), (seed0, text)
        else:
            assert finish == "max_tokens" and text.startswith("{"), (seed0, finish, text)


def test_vocab_that_cannot_spell_json_is_a_clear_error(gen, tmp_path):
    # TinyStories-656K's vocabulary has no "{" (nor byte tokens): nothing can start an object.
    with pytest.raises(AssertionError, match="no token of the vocabulary can continue the output"):
        generate(gen, tmp_path, "TinyStories-656K.f16.gguf", PERSON, 1, 50, 1)


@pytest.fixture(scope="module")
def hpl():
    p = os.path.join(BIN, "hpl")
    if not os.access(p, os.X_OK):
        pytest.skip(f"{p} not built (set HPL_BUILD_DIR)")
    return p


def run_hpl(hpl, *args):
    return subprocess.run([hpl, "run", "-m", os.path.join(MODELS, TINY[0]), "-p", "x", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_grammar_file(hpl, tmp_path):
    g = tmp_path / "yes.gbnf"
    g.write_text('root ::= ("yes" | "no") " " [0-9]{2}  # an answer and a number\n')
    r = run_hpl(hpl, "--grammar-file", str(g), "-n", "50", "--seed", "3")
    assert r.returncode == 0, r.stderr
    out = r.stdout.rstrip("\n")
    assert out[:3] in ("yes", "no ") and out[-2:].isdigit() and len(out) in (5, 6), out


def test_cli_errors_name_the_position(hpl, tmp_path):
    g = tmp_path / "bad.gbnf"
    g.write_text('root ::= item+\nitem ::= [a-z] "\n')
    r = run_hpl(hpl, "--grammar-file", str(g))
    assert r.returncode != 0
    assert "--grammar-file: line 2, column 16: unterminated string literal" in r.stderr
    s = tmp_path / "bad.json"
    s.write_text(json.dumps({"properties": {"xs": {"type": "array", "minItems": 2, "maxItems": 1}}}))
    r = run_hpl(hpl, "--json-schema", str(s))
    assert r.returncode != 0
    assert "--json-schema: schema at #/properties/xs: minItems 2 is above maxItems 1" in r.stderr
    r = run_hpl(hpl, "--json", "--json-schema", str(s))
    assert "give only one of" in r.stderr
