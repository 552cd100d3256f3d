"""The llama-cpp-python surface most programs use, so they switch by changing an import:

    from hpl import Llama        # was: from llama_cpp import Llama
    llm = Llama(model_path="model.gguf", n_ctx=2048, n_threads=4)
    out = llm("Q: Name the planets. A:", max_tokens=32, stop=["Q:"])
    print(out["choices"][0]["text"])
    for chunk in llm.create_chat_completion(messages=[{"role": "user", "content": "Hi"}],
                                            stream=True):
        print(chunk["choices"][0]["delta"].get("content", ""), end="")

Responses are the same OpenAI-shaped dicts (llama_cpp.llama_types: CreateCompletionResponse,
CreateChatCompletionResponse, and their stream chunks). What is not supported raises
NotImplementedError naming the argument: logprobs, suffix, token-list prompts,
tools/functions, logit_bias, logits_processor/stopping_criteria, mirostat,
typical_p/tfs_z != 1, frequency/presence penalties != 0, image content, embeddings, and
save_state/load_state (use hpl.Model.session() and Session.save/restore). Arguments of
Llama() that only tune llama.cpp (n_gpu_layers, use_mlock, rope scaling, ...) are accepted and
ignored; unknown ones raise TypeError.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ._requests import Generation, Stats
from .model import Model

# Upper bound of a chat template's tokens around one message (role markers, newlines).
_TEMPLATE_TOKENS_PER_MESSAGE = 16

# finish reasons: ours -> OpenAI's
_FINISH = {"end_of_generation": "stop", "stop_string": "stop", "stopped": "stop",
           "max_tokens": "length", "context_end": "length"}

_UNSUPPORTED_IF_SET = ("suffix", "logprobs", "top_logprobs", "logit_bias",
                       "logits_processor", "stopping_criteria", "functions", "function_call",
                       "tools", "tool_choice")
_UNSUPPORTED_UNLESS = {"frequency_penalty": 0.0, "presence_penalty": 0.0, "typical_p": 1.0,
                       "tfs_z": 1.0, "mirostat_mode": 0}


# llama.cpp tuning arguments of Llama(): accepted and ignored (they have no meaning here).
_IGNORED_INIT_ARGS = frozenset((
    "n_gpu_layers", "split_mode", "main_gpu", "tensor_split", "rpc_servers", "vocab_only",
    "use_mlock", "kv_overrides", "n_batch", "n_threads_batch", "rope_scaling_type",
    "pooling_type", "rope_freq_base", "rope_freq_scale", "yarn_ext_factor",
    "yarn_attn_factor", "yarn_beta_fast", "yarn_beta_slow", "yarn_orig_ctx", "logits_all",
    "embedding", "offload_kqv", "flash_attn", "no_perf", "last_n_tokens_size", "lora_base",
    "lora_scale", "lora_path", "numa", "chat_handler", "draft_model", "tokenizer", "type_k",
    "type_v", "spm_infill", "mul_mat_q", "f16_kv", "swa_full", "op_offload"))


def _reject_unsupported(kwargs: Mapping[str, Any]) -> None:
    for k, v in kwargs.items():
        if k in _UNSUPPORTED_IF_SET:
            if v not in (None, False, [], {}):
                raise NotImplementedError(f"hpl.Llama: {k!r} is not supported")
        elif k in _UNSUPPORTED_UNLESS:
            if v is not None and v != _UNSUPPORTED_UNLESS[k]:
                raise NotImplementedError(
                    f"hpl.Llama: {k}={v!r} is not supported (only {_UNSUPPORTED_UNLESS[k]!r})")
        elif k not in ("mirostat_tau", "mirostat_eta", "model", "echo", "logprobs"):
            raise TypeError(f"hpl.Llama: unexpected argument {k!r}")


def _grammar_text(grammar: Any) -> Optional[str]:
    """GBNF text of a str or of llama_cpp.LlamaGrammar (which keeps its text in _grammar)."""
    if grammar is None or isinstance(grammar, str):
        return grammar
    text = getattr(grammar, "_grammar", None)
    if isinstance(text, str):
        return text
    raise TypeError(f"hpl.Llama: grammar must be GBNF text or a LlamaGrammar, got "
                    f"{type(grammar).__name__}")


def _format_options(grammar: Any, response_format: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """grammar / response_format -> the Model options grammar / json_schema."""
    out: Dict[str, Any] = {}
    text = _grammar_text(grammar)
    if text is not None:
        out["grammar"] = text
    if response_format is None:
        return out
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "text":
        return out
    if kind == "json_object":  # llama-cpp-python's form may carry a "schema"
        schema = response_format.get("schema")
        out["json_schema"] = schema if schema is not None else {"type": "object"}
    elif kind == "json_schema":  # OpenAI's form
        js = response_format.get("json_schema")
        if not isinstance(js, Mapping) or "schema" not in js:
            raise ValueError("hpl.Llama: response_format json_schema needs json_schema.schema")
        out["json_schema"] = js["schema"]
    else:
        raise ValueError(f"hpl.Llama: response_format type must be text, json_object or "
                         f"json_schema, got {kind!r}")
    if "grammar" in out:
        raise ValueError("hpl.Llama: pass grammar or response_format, not both")
    return out


def _usage(stats: Optional[Stats]) -> Dict[str, int]:
    # OpenAI counts the whole prompt, the part reused from the prompt cache included
    p = stats.prompt_tokens + stats.cached_tokens if stats else 0
    c = stats.completion_tokens if stats else 0
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _finish(gen: Generation) -> str:
    return _FINISH.get(gen.stats.finish if gen.stats else "", "stop")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:  # OpenAI content parts
        if part.get("type") != "text":
            raise NotImplementedError(f"hpl.Llama: {part.get('type')!r} content is not supported")
        parts.append(part["text"])
    return "".join(parts)


class Llama:
    """llama_cpp.Llama's common surface over an hpl.Model (see the module docstring)."""

    def __init__(self, model_path: str, *, n_ctx: int = 512, n_threads: Optional[int] = None,
                 n_ubatch: Optional[int] = None, seed: Optional[int] = None,
                 use_mmap: bool = True,
                 chat_format: Optional[str] = None, verbose: bool = True,
                 **llama_cpp_only: Any) -> None:
        """Loads the model. n_ctx=0 means 2048 here (llama.cpp: the model's training
        context); n_threads None: libhpl's default (one thread per fast physical core).
        chat_format must be None: the model's own chat template is used."""
        unknown = set(llama_cpp_only) - _IGNORED_INIT_ARGS
        if unknown:
            raise TypeError(f"hpl.Llama: unexpected argument(s) {sorted(unknown)}")
        if chat_format is not None:
            raise NotImplementedError("hpl.Llama: chat_format; the GGUF's chat template is used")
        self.model_path = model_path
        # Like llama.cpp's sampler: seeded once (or at random), advancing across calls.
        self._rng = random.Random(seed if seed is not None and seed >= 0 else None)
        self.verbose = verbose
        # use_mmap=False (llama.cpp: read the whole file at load) is prefault here: the weights
        # stay mapped but every page is read at load time.
        self._model = Model(model_path, n_ctx=n_ctx or 2048, n_threads=n_threads,
                            n_ubatch=n_ubatch, prefault=not use_mmap)

    @property
    def model(self) -> Model:
        """The underlying hpl.Model (sessions, async, stats)."""
        return self._model

    def n_ctx(self) -> int:
        return self._model.n_ctx

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> List[int]:
        """Token ids of UTF-8 bytes (add_bos: the model's BOS if its vocab uses one)."""
        return self._model.tokenize(text, add_special=add_bos, parse_special=special)

    def detokenize(self, tokens: Sequence[int], prev_tokens: Optional[Sequence[int]] = None,
                   special: bool = False) -> bytes:
        """UTF-8 bytes of token ids (prev_tokens is accepted for compatibility, unused)."""
        return self._model.detokenize_bytes(tokens, render_special=special)

    def _options(self, prompt_tokens: int, max_tokens: Optional[int], temperature: float,
                 top_p: float, min_p: float, top_k: int, repeat_penalty: float, stop: Any,
                 seed: Optional[int]) -> Dict[str, Any]:
        # As llama-cpp-python: max_tokens None or <= 0 means until the context ends, and a
        # larger one is clamped to the room the prompt leaves (the engine refuses a turn whose
        # prompt + max_tokens does not fit).
        room = self._model.n_ctx - prompt_tokens
        if room <= 0:
            raise ValueError(f"Requested tokens ({prompt_tokens}) exceed context window of "
                             f"{self._model.n_ctx}")
        max_tokens = room if max_tokens is None or max_tokens <= 0 else min(max_tokens, room)
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if seed is None or seed < 0:
            seed = self._rng.getrandbits(63)
        return {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                "min_p": min_p, "top_k": top_k, "repeat_penalty": repeat_penalty,
                "stop": stops, "seed": seed}

    def create_completion(self, prompt: str, suffix: Optional[str] = None,
                          max_tokens: Optional[int] = 16, temperature: float = 0.8,
                          top_p: float = 0.95, min_p: float = 0.05, echo: bool = False,
                          stop: Optional[Union[str, List[str]]] = None,
                          repeat_penalty: float = 1.0, top_k: int = 40, stream: bool = False,
                          seed: Optional[int] = None, grammar: Any = None,
                          **unsupported: Any) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        """Text completion: a CreateCompletionResponse dict, or with stream=True an iterator of
        chunks of the same shape (one piece of text each; the last has finish_reason)."""
        _reject_unsupported(dict(unsupported, suffix=suffix))
        if not isinstance(prompt, str):
            raise NotImplementedError("hpl.Llama: a prompt must be a str (token lists are not "
                                      "supported)")
        # The engine's own count for a stateless raw prompt (BOS, special tokens parsed).
        n_prompt = len(self._model.tokenize(prompt, add_special=True, parse_special=True))
        opts = self._options(n_prompt, max_tokens, temperature, top_p, min_p, top_k,
                             repeat_penalty, stop, seed)
        gen = self._model.submit(prompt, **opts, **_format_options(grammar, None))
        head = {"id": f"cmpl-{uuid.uuid4()}", "object": "text_completion",
                "created": int(time.time()), "model": self.model_path}
        if stream:
            return self._completion_chunks(gen, head, prompt if echo else "")
        text = gen.result()
        return dict(head, choices=[{"text": (prompt if echo else "") + text, "index": 0,
                                    "logprobs": None, "finish_reason": _finish(gen)}],
                    usage=_usage(gen.stats))

    __call__ = create_completion

    def _completion_chunks(self, gen: Generation, head: Dict[str, Any],
                           echo: str) -> Iterator[Dict[str, Any]]:
        with gen:  # closing this iterator (break, GC) stops the request
            if echo:
                yield dict(head, choices=[{"text": echo, "index": 0, "logprobs": None,
                                           "finish_reason": None}])
            for piece in gen:
                yield dict(head, choices=[{"text": piece, "index": 0, "logprobs": None,
                                           "finish_reason": None}])
            yield dict(head, choices=[{"text": "", "index": 0, "logprobs": None,
                                       "finish_reason": _finish(gen)}])

    def create_chat_completion(self, messages: Sequence[Mapping[str, Any]],
                               temperature: float = 0.2, top_p: float = 0.95, top_k: int = 40,
                               min_p: float = 0.05, stream: bool = False,
                               stop: Optional[Union[str, List[str]]] = None,
                               seed: Optional[int] = None, max_tokens: Optional[int] = None,
                               repeat_penalty: float = 1.0, grammar: Any = None,
                               response_format: Optional[Mapping[str, Any]] = None,
                               **unsupported: Any
                               ) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
        """Chat completion with the model's chat template: a CreateChatCompletionResponse
        dict, or with stream=True an iterator of chat.completion.chunk dicts (the first delta
        has the role, then content pieces, the last is empty with finish_reason)."""
        _reject_unsupported(unsupported)
        pairs: List[Tuple[str, str]] = [(m["role"], _content_text(m.get("content")))
                                        for m in messages]
        # The chat template is applied inside libhpl: estimate its tokens from the contents
        # plus a generous per-message allowance for the template's markers.
        n_prompt = sum(len(self._model.tokenize(c, add_special=False, parse_special=True))
                       for _, c in pairs) + _TEMPLATE_TOKENS_PER_MESSAGE * (len(pairs) + 1)
        opts = self._options(n_prompt, max_tokens, temperature, top_p, min_p, top_k,
                             repeat_penalty, stop, seed)
        gen = self._model.submit(messages=pairs, **opts,
                                 **_format_options(grammar, response_format))
        head = {"id": f"chatcmpl-{uuid.uuid4()}", "created": int(time.time()),
                "model": self.model_path}
        if stream:
            return self._chat_chunks(gen, dict(head, object="chat.completion.chunk"))
        text = gen.result()
        return dict(head, object="chat.completion",
                    choices=[{"index": 0, "message": {"role": "assistant", "content": text},
                              "logprobs": None, "finish_reason": _finish(gen)}],
                    usage=_usage(gen.stats))

    def _chat_chunks(self, gen: Generation, head: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
        with gen:
            yield dict(head, choices=[{"index": 0, "delta": {"role": "assistant"},
                                       "logprobs": None, "finish_reason": None}])
            for piece in gen:
                yield dict(head, choices=[{"index": 0, "delta": {"content": piece},
                                           "logprobs": None, "finish_reason": None}])
            yield dict(head, choices=[{"index": 0, "delta": {}, "logprobs": None,
                                       "finish_reason": _finish(gen)}])

    def close(self) -> None:
        self._model.close()

    def __enter__(self) -> "Llama":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
