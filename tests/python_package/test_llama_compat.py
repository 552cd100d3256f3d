"""hpl.Llama against llama-cpp-python's documented response shapes (llama_cpp/llama_types.py:
CreateCompletionResponse, CreateChatCompletionResponse, CreateChatCompletionStreamResponse)."""
import pytest

import hpl
from conftest import STORY, STORY_TEXT

OPT = object()  # NotRequired key

COMPLETION_CHOICE = {"text": str, "index": int, "logprobs": (type(None), dict),
                     "finish_reason": (type(None), str)}
USAGE = {"prompt_tokens": int, "completion_tokens": int, "total_tokens": int}
COMPLETION = {"id": str, "object": str, "created": int, "model": str,
              "choices": [COMPLETION_CHOICE], "usage": (OPT, USAGE)}
CHAT_MESSAGE = {"role": str, "content": (type(None), str)}
CHAT = {"id": str, "object": str, "created": int, "model": str,
        "choices": [{"index": int, "message": CHAT_MESSAGE, "logprobs": (type(None), dict),
                     "finish_reason": (type(None), str)}],
        "usage": USAGE}
DELTA = {"role": (OPT, str), "content": (OPT, str)}
CHAT_CHUNK = {"id": str, "model": str, "object": str, "created": int,
              "choices": [{"index": int, "delta": DELTA, "finish_reason": (type(None), str),
                           "logprobs": (OPT, type(None), dict)}]}


def conforms(value, shape, where="$"):
    """Asserts value matches shape: a dict of key -> shape (exact key set, OPT marks a
    NotRequired key), a one-element list (every item), a type, or a tuple of alternatives."""
    if isinstance(shape, tuple):
        alts = [s for s in shape if s is not OPT]
        errors = []
        for s in alts:
            try:
                conforms(value, s, where)
                return
            except AssertionError as e:
                errors.append(str(e))
        raise AssertionError(f"{where}: {value!r} matches none of {alts}: {errors}")
    if isinstance(shape, dict):
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        required = {k for k, s in shape.items() if not (isinstance(s, tuple) and OPT in s)}
        assert required <= set(value), f"{where}: missing {required - set(value)}"
        assert set(value) <= set(shape), f"{where}: unexpected {set(value) - set(shape)}"
        for k, v in value.items():
            conforms(v, shape[k], f"{where}.{k}")
    elif isinstance(shape, list):
        assert isinstance(value, list) and value, f"{where}: not a non-empty list"
        for i, v in enumerate(value):
            conforms(v, shape[0], f"{where}[{i}]")
    else:
        assert isinstance(value, shape), f"{where}: {value!r} is not {shape.__name__}"


@pytest.fixture(scope="module")
def llm():
    with hpl.Llama(model_path=STORY, n_ctx=256, n_threads=1, verbose=False) as l:
        yield l


def test_completion_shape_and_values(llm):
    out = llm("Once upon a time", max_tokens=12, temperature=0)
    conforms(out, COMPLETION)
    assert out["object"] == "text_completion" and out["id"].startswith("cmpl-")
    assert out["choices"][0]["text"].startswith(STORY_TEXT[:20])
    assert out["choices"][0]["finish_reason"] in ("stop", "length")
    u = out["usage"]
    assert u["prompt_tokens"] == 5 and u["total_tokens"] == 5 + u["completion_tokens"]
    same = llm.create_completion("Once upon a time", max_tokens=12, temperature=0, echo=True)
    assert same["choices"][0]["text"] == "Once upon a time" + out["choices"][0]["text"]
    stopped = llm("Once upon a time", max_tokens=40, temperature=0, stop=["Lily"])
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert not stopped["choices"][0]["text"].endswith("Lily")


def test_completion_stream_chunks(llm):
    chunks = list(llm("Once upon a time", max_tokens=12, temperature=0, stream=True))
    for c in chunks:
        conforms(c, COMPLETION)
        assert "usage" not in c and c["object"] == "text_completion"
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    full = llm("Once upon a time", max_tokens=12, temperature=0)["choices"][0]["text"]
    assert "".join(c["choices"][0]["text"] for c in chunks) == full


def test_chat_completion_and_stream(llm):
    msgs = [{"role": "system", "content": "You tell stories."},
            {"role": "user", "content": [{"type": "text", "text": "Tell me a story."}]}]
    out = llm.create_chat_completion(messages=msgs, max_tokens=8, temperature=0)
    conforms(out, CHAT)
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert out["choices"][0]["message"]["role"] == "assistant"
    chunks = list(llm.create_chat_completion(messages=msgs, max_tokens=8, temperature=0,
                                             stream=True))
    for c in chunks:
        conforms(c, CHAT_CHUNK)
        assert c["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == out["choices"][0]["message"]["content"]


def test_breaking_a_stream_stops_it(llm):
    stream = llm("Once upon a time", max_tokens=200, temperature=0.9, stream=True)
    next(stream)
    stream.close()  # closes the Generation inside: the request is stopped and drained
    llm.model.wait_idle()
    assert not llm.model._requests


def test_tokenize_detokenize_bytes(llm):
    ids = llm.tokenize(b"Once upon a time")
    assert ids[0] == 1 and all(isinstance(i, int) for i in ids)
    assert llm.tokenize(b"Once upon a time", add_bos=False) == ids[1:]
    assert llm.detokenize(ids) == b"Once upon a time"
    assert llm.n_ctx() == 256


def test_unsupported_arguments_say_so(llm):
    with pytest.raises(NotImplementedError, match="logprobs"):
        llm("Once", max_tokens=2, logprobs=5)
    with pytest.raises(NotImplementedError, match="tools"):
        llm.create_chat_completion([{"role": "user", "content": "hi"}],
                                   tools=[{"type": "function"}])
    with pytest.raises(NotImplementedError, match="frequency_penalty"):
        llm("Once", max_tokens=2, frequency_penalty=0.5)
    with pytest.raises(TypeError):
        llm("Once", max_tokens=2, no_such_argument=1)
    llm("Once", max_tokens=2, frequency_penalty=0.0, presence_penalty=0.0)  # defaults pass


def test_llama_cpp_tuning_arguments_are_accepted_unknown_ones_rejected():
    with hpl.Llama(model_path=STORY, n_ctx=64, n_threads=1, n_gpu_layers=-1, use_mlock=False, n_batch=512,
                   flash_attn=True, verbose=False) as l:
        assert l.n_ctx() == 64
    with pytest.raises(TypeError, match="no_such"):
        hpl.Llama(model_path=STORY, no_such=1)


def test_max_tokens_none_runs_to_the_context_end_and_seeds_advance():
    with hpl.Llama(model_path=STORY, n_ctx=64, n_threads=1, seed=5) as l:
        out = l("Once upon a time", max_tokens=None, temperature=1.0)
        u = out["usage"]
        # stops at the end of the context unless the model ended the story first
        assert u["total_tokens"] == 64 or out["choices"][0]["finish_reason"] == "stop"
        assert l("Once upon a time", max_tokens=1000, temperature=0)["usage"]["total_tokens"] <= 64
        chat = l.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=None)
        assert chat["usage"]["total_tokens"] <= 64
        with pytest.raises(ValueError, match="exceed context window"):
            l("Once upon a time " * 30, max_tokens=4)
        a = [l("Once", max_tokens=12, temperature=1.0)["choices"][0]["text"] for _ in range(3)]
    with hpl.Llama(model_path=STORY, n_ctx=64, n_threads=1, seed=5) as l2:
        l2("Once upon a time", max_tokens=None, temperature=1.0)
        l2("Once upon a time", max_tokens=1000, temperature=0)
        l2.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=None)
        b = [l2("Once", max_tokens=12, temperature=1.0)["choices"][0]["text"] for _ in range(3)]
    assert a == b  # the same seed gives the same sequence of calls
    assert len(set(a)) > 1  # and successive calls differ, as with llama-cpp-python


def test_grammar_and_response_format_constrain_the_reply(llm):
    import json

    class LlamaGrammar:  # llama_cpp.LlamaGrammar keeps its GBNF text in _grammar
        _grammar = 'root ::= "Tom" | "Sue"'

    for g in ('root ::= "Tom" | "Sue"', LlamaGrammar()):
        out = llm("Once upon a time", max_tokens=16, temperature=0.8, seed=5, grammar=g)
        assert out["choices"][0]["text"] in ("Tom", "Sue")
    msgs = [{"role": "user", "content": "Is the sky blue?"}]
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"],
              "additionalProperties": False}
    for rf in ({"type": "json_object", "schema": schema},
               {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}):
        for seed in range(3):
            out = llm.create_chat_completion(msgs, max_tokens=32, seed=seed, response_format=rf)
            reply = json.loads(out["choices"][0]["message"]["content"])
            assert set(reply) == {"a"} and isinstance(reply["a"], bool), reply
    text = llm.create_chat_completion(msgs, max_tokens=4, response_format={"type": "text"})
    conforms(text, CHAT)
    with pytest.raises(ValueError, match="response_format"):
        llm.create_chat_completion(msgs, max_tokens=4, response_format={"type": "xml"})
    with pytest.raises(TypeError, match="grammar"):
        llm("Once", max_tokens=2, grammar=42)
