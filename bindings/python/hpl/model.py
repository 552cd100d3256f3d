"""Model and Session: the typed Python API over libhpl.

A Model owns one worker thread that runs requests strictly in submission order; any number
of Python threads may submit to it. generate()/chat() return the text, or with stream=True a
Generation iterated for pieces; agenerate()/achat() are the asyncio forms.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import threading
import weakref
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, List, Mapping, Optional, Sequence, Set, Tuple, Union,
                    overload)

from . import _capi
from ._handle import Handle
from ._requests import _DISPATCH, AsyncGeneration, Generation
from .errors import HplError

if TYPE_CHECKING:
    from typing import Literal

    from typing_extensions import TypedDict, Unpack

    class GenerateOptions(TypedDict, total=False):
        """Per-request settings (defaults are the C API's)."""

        max_tokens: int  # > 0 (default 128)
        temperature: float  # <= 0: greedy (default 0.8)
        top_k: int  # <= 0: off (default 40)
        top_p: float  # >= 1: off (default 0.95)
        min_p: float  # <= 0: off (default 0.05)
        repeat_penalty: float  # 1: off (default 1)
        repeat_last_n: int  # default 64
        seed: int  # default 0
        stop: Union[str, Sequence[str]]  # generation ends before any of these; not emitted
        cache_prompt: bool  # stateless: reuse the KV of a cached prompt prefix (default True)
        grammar: str  # GBNF (llama.cpp's format, start rule "root"): the reply is a sentence of it
        json_schema: Union[str, Mapping[str, Any]]  # the reply is JSON valid against this schema

#: A chat message: {"role": ..., "content": ...} or a (role, content) pair.
Message = Union[Mapping[str, Any], Tuple[str, str]]

_OPTION_NAMES = ("max_tokens", "temperature", "top_k", "top_p", "min_p", "repeat_penalty",
                 "repeat_last_n", "seed", "stop", "cache_prompt", "grammar", "json_schema")
_SAMPLER_NAMES = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n",
                  "seed")


def _message_pair(m: Message) -> Tuple[str, str]:
    role: Any
    content: Any
    if isinstance(m, tuple):
        role, content = m
    else:
        role, content = m["role"], m.get("content")
    if not isinstance(role, str) or not isinstance(content, str):
        raise TypeError(f"a chat message needs a str role and str content, got {m!r}")
    return role, content


class _Params:
    """A hpl_request_params and the ctypes buffers it points into (alive until submit)."""

    def __init__(self, prompt: Optional[str], messages: Optional[Sequence[Message]],
                 options: Mapping[str, Any]) -> None:
        unknown = set(options) - set(_OPTION_NAMES)
        if unknown:
            raise TypeError(f"unknown option(s) {sorted(unknown)}; valid: {list(_OPTION_NAMES)}")
        if (prompt is None) == (messages is None):
            raise ValueError("pass either a prompt or messages")
        p = _capi.RequestParams()
        _capi.check(_capi.request_params_init(ctypes.byref(p)))
        self._keep: List[Any] = []
        if messages is not None:
            pairs = [_message_pair(m) for m in messages]
            arr = (_capi.ChatMessage * max(1, len(pairs)))()
            for i, (role, content) in enumerate(pairs):
                arr[i].role = role.encode()
                arr[i].content = content.encode()
            self._keep.append(arr)
            p.messages = arr
            p.n_messages = len(pairs)
        else:
            if not isinstance(prompt, str):
                raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
            p.prompt = prompt.encode()
        stop = options.get("stop")
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if stops:
            sarr = (ctypes.c_char_p * len(stops))(*[s.encode() for s in stops])
            self._keep.append(sarr)
            p.stop_strings = sarr
            p.n_stop_strings = len(stops)
        if options.get("max_tokens") is not None:
            p.max_tokens = int(options["max_tokens"])
        if options.get("cache_prompt") is not None:
            p.cache_prompt = 1 if options["cache_prompt"] else 0
        for name in _SAMPLER_NAMES:
            if options.get(name) is not None:
                setattr(p.sampler, name, options[name])
        self._constraint(p, options.get("grammar"), options.get("json_schema"))
        self.c = p

    def _constraint(self, p: Any, grammar: Any, schema: Any) -> None:
        # compiled by libhpl at submit: a bad grammar or schema raises there with its position
        if grammar is not None and schema is not None:
            raise ValueError("pass grammar or json_schema, not both")
        if grammar is not None:
            if not isinstance(grammar, str):
                raise TypeError(f"grammar must be a str (GBNF), got {type(grammar).__name__}")
            self._keep.append(grammar.encode())
            p.grammar = self._keep[-1]
        if schema is not None:
            if isinstance(schema, Mapping) or isinstance(schema, bool):
                schema = json.dumps(schema)
            if not isinstance(schema, str):
                raise TypeError(f"json_schema must be a str or a dict, got {type(schema).__name__}")
            self._keep.append(schema.encode())
            p.json_schema = self._keep[-1]


@dataclass(frozen=True)
class SessionInfo:
    n_ctx: int  #: context length
    n_past: int  #: tokens in the KV cache
    n_tokens: int  #: tokens in the conversation
    n_exchanges: int  #: turns so far


@dataclass(frozen=True)
class MemoryInfo:
    model_bytes: int  #: this model's weights if loaded, else 0
    kv_bytes: int  #: KV caches of this model's live sessions
    scratch_bytes: int  #: forward-pass scratch of this model's live sessions
    loaded_bytes: int  #: all loaded models
    budget_bytes: int  #: the budget; 0 = unlimited


def version() -> str:
    """libhpl's version string."""
    s = ctypes.c_char_p()
    _capi.check(_capi.version(None, None, None, ctypes.byref(s)))
    return (s.value or b"").decode()


def set_memory_budget(nbytes: int) -> None:
    """Budget for all loaded models (0 = unlimited); idle models are unloaded LRU-first."""
    _capi.check(_capi.set_memory_budget(nbytes))


class _Generator:
    """generate/chat/submit and their async forms, shared by Model and Session."""

    def _target(self) -> Tuple["Model", Optional["Session"]]:
        raise NotImplementedError

    def submit(self, prompt: Optional[str] = None, *,
               messages: Optional[Sequence[Message]] = None,
               **options: "Unpack[GenerateOptions]") -> Generation:
        """Queues a request (a prompt, or chat messages) and returns its Generation at once."""
        model, session = self._target()
        return Generation(model, session, _Params(prompt, messages, options).c)

    @overload
    def generate(self, prompt: str, *, stream: "Literal[False]" = ...,
                 **options: "Unpack[GenerateOptions]") -> str: ...

    @overload
    def generate(self, prompt: str, *, stream: "Literal[True]",
                 **options: "Unpack[GenerateOptions]") -> Generation: ...

    def generate(self, prompt: str, *, stream: bool = False,
                 **options: "Unpack[GenerateOptions]") -> Union[str, Generation]:
        """Continues a raw prompt. Returns the generated text, or with stream=True a Generation
        yielding text pieces (UTF-8-complete) as they are made.

        Options: max_tokens, temperature, top_k, top_p, min_p, repeat_penalty,
        repeat_last_n, seed, stop (a string or list of strings, not emitted), cache_prompt,
        grammar (GBNF text) or json_schema (a dict or its JSON text).
        Raises HplError (e.g. ContextFullError) with the library's message.
        """
        gen = self.submit(prompt, **options)
        return gen if stream else gen.result()

    @overload
    def chat(self, messages: Union[str, Sequence[Message]], *,
             stream: "Literal[False]" = ..., **options: "Unpack[GenerateOptions]") -> str: ...

    @overload
    def chat(self, messages: Union[str, Sequence[Message]], *, stream: "Literal[True]",
             **options: "Unpack[GenerateOptions]") -> Generation: ...

    def chat(self, messages: Union[str, Sequence[Message]], *, stream: bool = False,
             **options: "Unpack[GenerateOptions]") -> Union[str, Generation]:
        """The assistant's reply to chat messages, formatted with the model's chat template
        (a str is one user message). In a Session pass only the new messages: earlier turns
        are in its KV cache. stream=True gives a Generation of pieces."""
        gen = self.submit(messages=_as_messages(messages), **options)
        return gen if stream else gen.result()

    def agenerate(self, prompt: str, **options: "Unpack[GenerateOptions]") -> AsyncGeneration:
        """generate() for asyncio: ``await`` it for the text or ``async for`` the pieces.
        Call it inside a running event loop."""
        model, session = self._target()
        return AsyncGeneration(model, session, _Params(prompt, None, options).c)

    def achat(self, messages: Union[str, Sequence[Message]],
              **options: "Unpack[GenerateOptions]") -> AsyncGeneration:
        """chat() for asyncio: ``await`` it for the reply or ``async for`` the pieces."""
        model, session = self._target()
        return AsyncGeneration(model, session, _Params(None, _as_messages(messages), options).c)


def _as_messages(messages: Union[str, Sequence[Message]]) -> Sequence[Message]:
    return [("user", messages)] if isinstance(messages, str) else messages


_open_models: "weakref.WeakSet[Model]" = weakref.WeakSet()


class Model(_Generator):
    """A loaded GGUF model with its worker thread.

    Example::

        with hpl.Model("stories260K.gguf", n_ctx=512, n_threads=2) as model:
            print(model.generate("Once upon a time", max_tokens=32, temperature=0))
            for piece in model.generate("The dragon", stream=True):
                print(piece, end="", flush=True)

    Thread-safe: any thread may submit; requests run one at a time in submission order.
    Close it with close() or a ``with`` block; models still open at interpreter exit are
    closed then (running requests stopped) before Python shuts down.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, n_ctx: int = 2048,
                 n_threads: Optional[int] = None, n_ubatch: Optional[int] = None,
                 prefault: bool = False, max_consecutive_failures: int = 3,
                 cpus: Optional[str] = None, cache_type: Optional[str] = None,
                 draft_model: Optional[Union[str, "os.PathLike[str]"]] = None, lookup: int = 0,
                 draft_max: Optional[int] = None, draft_min: Optional[int] = None) -> None:
        """Loads and validates the model (raises ModelFileError naming what is wrong).

        n_ctx: context length of every session, in tokens. n_threads: compute threads
        (None: the library's default, one per fast physical core). n_ubatch: prompt micro-batch in tokens, also how soon
        a stop takes effect during prompt evaluation (None: the library's default). The
        weights are memory-mapped; prefault=True reads every page at load time.
        max_consecutive_failures: failed requests in a row before the model refuses work
        until reset(). cpus: pin the compute threads to these CPUs, e.g. "4-7" or "0,2-3".
        cache_type: KV cache rows, "f16" (None: the default), "f32", "q8_0" or "q4_0".
        Speculative decoding: draft_model (a smaller GGUF with the same vocabulary) or
        lookup=N (prompt lookup with n-grams up to N), draft_max / draft_min tokens per step."""
        self._path = os.fspath(path)
        self._requests: Set[int] = set()
        self._sessions: "List[Session]" = []
        self._lock = threading.Lock()
        mp = _capi.ModelParams()
        _capi.check(_capi.model_params_init(ctypes.byref(mp)))
        if n_threads is not None:
            mp.n_threads = n_threads
        mp.n_ctx = n_ctx
        if n_ubatch is not None:
            mp.n_ubatch = n_ubatch
        mp.prefault = 1 if prefault else 0
        mp.max_consecutive_failures = max_consecutive_failures
        mp.cpus = cpus.encode() if cpus else None
        mp.cache_type = cache_type.encode() if cache_type else None
        mp.draft_model = os.fsencode(draft_model) if draft_model else None
        mp.lookup = lookup
        if draft_max is not None:
            mp.draft_max = draft_max
        if draft_min is not None:
            mp.draft_min = draft_min
        h = ctypes.c_void_p()
        _capi.check(_capi.model_load(os.fsencode(self._path), ctypes.byref(mp), ctypes.byref(h)))
        self._handle = Handle(h.value or 0, "model")
        self.n_ctx: int = mp.n_ctx
        self.n_threads: int = mp.n_threads
        _open_models.add(self)

    @property
    def path(self) -> str:
        return self._path

    def _target(self) -> Tuple["Model", Optional["Session"]]:
        return self, None

    def session(self) -> "Session":
        """A new conversation whose KV cache is kept between turns."""
        return Session(self)

    def _info(self) -> "_capi.ModelInfo":
        i = _capi.ModelInfo()
        with self._handle.use() as h:
            _capi.check(_capi.model_info(h, ctypes.byref(i)))
        return i

    @property
    def kind(self) -> str:
        """"generate" (generates text, and embeds), "embed" (only embeds) or "rerank"."""
        return _capi.MODEL_KIND_NAMES[self._info().kind]

    @property
    def n_embd(self) -> int:
        """The size of an embedding."""
        return int(self._info().n_embd)

    @staticmethod
    def _texts(texts: Sequence[str], what: str) -> Any:
        if isinstance(texts, (str, bytes)):
            raise TypeError(f"{what} must be a sequence of str")
        enc = []
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"{what}[{i}] must be a str, got {type(t).__name__}")
            if "\0" in t:
                raise ValueError(f"{what}[{i}] contains a NUL character")
            enc.append(t.encode())
        return (ctypes.c_char_p * max(1, len(enc)))(*enc), len(enc)

    @overload
    def embed(self, texts: str, *, pooling: Optional[str] = ..., normalize: bool = ...,
              truncate: bool = ...) -> List[float]: ...

    @overload
    def embed(self, texts: Sequence[str], *, pooling: Optional[str] = ...,
              normalize: bool = ..., truncate: bool = ...) -> List[List[float]]: ...

    def embed(self, texts: Union[str, Sequence[str]], *, pooling: Optional[str] = None,
              normalize: bool = True,
              truncate: bool = False) -> Union[List[float], List[List[float]]]:
        """Embedding vectors: one (n_embd floats) for a str, a list of them for a list of
        texts, evaluated together in one request of the model's queue. pooling: "mean",
        "cls", "last" or None (the model's); normalize: L2 norm 1; truncate: cut texts
        longer than the model's context (else InvalidArgumentError naming the text)."""
        if pooling not in _capi.POOLING_VALUES:
            raise ValueError(f"pooling must be one of mean, cls, last or None, got {pooling!r}")
        single = isinstance(texts, str)
        arr, n = self._texts([texts] if single else texts, "texts")  # type: ignore[list-item]
        ep = _capi.EmbedParams()
        _capi.check(_capi.embed_params_init(ctypes.byref(ep)))
        ep.pooling = _capi.POOLING_VALUES[pooling]
        ep.normalize = int(normalize)
        ep.truncate = int(truncate)

        def submit(mh: Any, key: Any, rid: Any) -> int:
            return int(_capi.submit_embed(mh, arr, n, ctypes.byref(ep), _DISPATCH, key, rid))

        req = Generation(self, None, None, submit)
        req.wait()
        rows = req.outputs or []
        return rows[0] if single else rows

    def rerank(self, query: str, documents: Sequence[str], *,
               truncate: bool = False) -> List[float]:
        """Relevance scores of documents for query (higher: more relevant), in document
        order, from a reranker (kind "rerank"). truncate: cut documents that do not fit
        beside the query (else InvalidArgumentError naming the document)."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        if "\0" in query:
            raise ValueError("query contains a NUL character")
        arr, n = self._texts(documents, "documents")
        q = query.encode()

        def submit(mh: Any, key: Any, rid: Any) -> int:
            return int(_capi.submit_rerank(mh, q, arr, n, int(truncate), _DISPATCH, key, rid))

        req = Generation(self, None, None, submit)
        req.wait()
        return [row[0] for row in (req.outputs or [])]

    def tokenize(self, text: Union[str, bytes], *, add_special: bool = True,
                 parse_special: bool = False) -> List[int]:
        """Token ids of text. add_special: BOS/EOS as the model's vocab asks; parse_special:
        special-token texts ("<start_of_turn>") become their ids."""
        data = text.encode() if isinstance(text, str) else bytes(text)
        cap = len(data) + 8
        while True:
            buf = (ctypes.c_int32 * cap)()
            n = ctypes.c_size_t()
            with self._handle.use() as h:
                _capi.check(_capi.tokenize(h, data, len(data), int(add_special),
                                           int(parse_special), buf, cap, ctypes.byref(n)))
            if n.value <= cap:
                return list(buf[:n.value])
            cap = n.value

    def detokenize_bytes(self, tokens: Sequence[int], *, render_special: bool = False) -> bytes:
        """The UTF-8 bytes of token ids (control tokens give "" unless render_special)."""
        ids = (ctypes.c_int32 * max(1, len(tokens)))(*tokens)
        cap = 16 * len(tokens) + 16
        while True:
            buf = ctypes.create_string_buffer(cap)
            n = ctypes.c_size_t()
            with self._handle.use() as h:
                _capi.check(_capi.detokenize(h, ids, len(tokens), int(render_special), buf, cap,
                                             ctypes.byref(n)))
            if n.value <= cap:
                return buf.raw[:n.value]
            cap = n.value

    def detokenize(self, tokens: Sequence[int], *, render_special: bool = False) -> str:
        """The text of token ids."""
        return self.detokenize_bytes(tokens, render_special=render_special).decode(
            "utf-8", "replace")

    @property
    def failed(self) -> bool:
        """True after max_consecutive_failures failed requests in a row (see reset())."""
        f = ctypes.c_int32()
        with self._handle.use() as h:
            _capi.check(_capi.model_failed(h, ctypes.byref(f)))
        return bool(f.value)

    def reset(self) -> None:
        """Leaves the failed state (circuit breaker)."""
        with self._handle.use() as h:
            _capi.check(_capi.model_reset(h))

    def memory(self) -> MemoryInfo:
        m = _capi.MemoryInfo()
        with self._handle.use() as h:
            _capi.check(_capi.memory_info(h, ctypes.byref(m)))
        return MemoryInfo(m.model_bytes, m.kv_bytes, m.scratch_bytes, m.loaded_bytes,
                          m.budget_bytes)

    def save_prefix(self, path: Union[str, "os.PathLike[str]"], prompt: Optional[str] = None, *,
                    messages: Optional[Sequence[Message]] = None) -> None:
        """Evaluates a fixed prompt prefix (a prompt, or chat messages formatted as a request's)
        and writes its KV cache to path (hpl_prefix_save)."""
        params = _Params(prompt, messages, {})
        with self._handle.use() as h:
            _capi.check(_capi.prefix_save(h, ctypes.byref(params.c), os.fsencode(path)))

    def load_prefix(self, path: Union[str, "os.PathLike[str]"], prompt: Optional[str] = None, *,
                    messages: Optional[Sequence[Message]] = None) -> int:
        """Loads a saved prefix for the next stateless requests; with a prompt or messages,
        the file must hold their tokens (SessionMismatchError otherwise). Returns its length
        in tokens (hpl_prefix_load)."""
        params = None if prompt is None and messages is None else _Params(prompt, messages, {})
        n = ctypes.c_int64()
        with self._handle.use() as h:
            _capi.check(_capi.prefix_load(h, os.fsencode(path),
                                          ctypes.byref(params.c) if params else None,
                                          ctypes.byref(n)))
        return n.value

    def wait_idle(self) -> None:
        """Blocks until nothing is queued or running."""
        with self._handle.use() as h:
            _capi.check(_capi.wait_idle(h))

    def _stop_request(self, rid: int, blocking: bool = True) -> bool:
        hd = self._handle
        if not blocking:  # from __del__: the handle's lock may be held on this very thread
            if hd.closing or not hd.value:
                return False
        try:
            with hd.use() as h:
                return bool(_capi.stop(h, rid) == _capi.OK)
        except HplError:
            return False  # closed: close() stopped it

    def close(self) -> None:
        """Stops every request, frees the sessions and unloads the model; waits for calls
        running on other threads to return. Idempotent."""
        hd = getattr(self, "_handle", None)
        if hd is None:
            return
        if not hd.begin_close():
            hd.wait_closed()  # another thread is closing it: return when it is done
            return
        h = hd.value
        for rid in list(self._requests):
            _capi.stop(h, rid)
        hd.wait_unused()  # other threads' calls end (their requests were stopped)
        for rid in list(self._requests):  # submitted just before close() began
            _capi.stop(h, rid)
        for s in list(self._sessions):
            s.close()
        status = _capi.model_unload(h)
        if status != _capi.OK:
            hd.reopen()
            _capi.check(status)
        hd.mark_closed()
        _open_models.discard(self)

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except BaseException:  # noqa: BLE001
            pass

    def __repr__(self) -> str:
        state = "open" if getattr(self, "_handle", None) and self._handle.value else "closed"
        return f"<hpl.Model {self._path!r} n_ctx={self.n_ctx} {state}>"


class Session(_Generator):
    """A conversation on a model: its KV cache is kept between turns, so a follow-up only
    evaluates the new text. save()/restore() move it through a file."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self._requests: Set[int] = set()
        h = ctypes.c_void_p()
        with model._handle.use() as mh:  # listed before the use ends: close() then sees it
            _capi.check(_capi.session_create(mh, ctypes.byref(h)))
            self._handle = Handle(h.value or 0, "session")
            with model._lock:
                model._sessions.append(self)

    def _target(self) -> Tuple[Model, Optional["Session"]]:
        return self.model, self

    def _call(self, fn: Any, *args: Any) -> None:
        with self.model._handle.use(), self._handle.use() as h:
            _capi.check(fn(h, *args))

    def reset(self) -> None:
        """Starts a new conversation."""
        self._call(_capi.session_reset)

    def restart(self, keep_last: int) -> None:
        """Starts over carrying the last keep_last exchanges (after a ContextFullError)."""
        self._call(_capi.session_restart, keep_last)

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes the tokens and KV cache to a file (after the requests queued before)."""
        self._call(_capi.session_save, os.fsencode(path))

    def restore(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Loads a saved conversation; SessionMismatchError for another model's file."""
        self._call(_capi.session_restore, os.fsencode(path))

    def info(self) -> SessionInfo:
        i = _capi.SessionInfo()
        self._call(_capi.session_info, ctypes.byref(i))
        return SessionInfo(i.n_ctx, i.n_past, i.n_tokens, i.n_exchanges)

    def close(self) -> None:
        """Stops this session's requests and frees it. Idempotent."""
        hd = getattr(self, "_handle", None)
        if hd is None:
            return
        if not hd.begin_close():
            hd.wait_closed()
            return
        mh = self.model._handle.value
        if mh:
            for rid in list(self._requests):
                _capi.stop(mh, rid)
        hd.wait_unused()
        if mh:
            for rid in list(self._requests):
                _capi.stop(mh, rid)
                _capi.wait(mh, rid, -1)
        status = _capi.session_free(hd.value)
        if status != _capi.OK:
            hd.reopen()
            _capi.check(status)
        hd.mark_closed()
        with self.model._lock:
            if self in self.model._sessions:
                self.model._sessions.remove(self)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except BaseException:  # noqa: BLE001
            pass


@atexit.register
def _close_all_at_exit() -> None:
    # Runs before the interpreter finalizes: stop every request and join every worker, so no
    # worker thread calls back into a Python that is shutting down.
    for m in list(_open_models):
        try:
            m.close()
        except BaseException:  # noqa: BLE001
            pass
