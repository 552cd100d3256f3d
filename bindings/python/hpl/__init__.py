"""happy-phone-llm for Python: ctypes over the C API (libhpl.so).

    import hpl
    model = hpl.Model("stories260K.gguf", n_ctx=512)
    for piece in model.generate("Once upon a time", max_tokens=32, temperature=0):
        print(piece, end="", flush=True)

    chat = model.session()
    print("".join(chat.generate("Hello", max_tokens=16)))   # the KV cache is kept
    chat.save("chat.session"); chat.restore("chat.session")

The library is found through $HPL_LIB (the .so itself), else $HPL_BUILD_DIR/lib, else
<repo>/build/lib, else the system loader path.

Events arrive on the model's worker thread (see bindings/c/hpl.h); generate() turns them into
an iterator through a queue, so the iterating thread never runs inference itself. Leaving the
loop early (break, exception, closing the generator) stops the request.
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

__all__ = ["HplError", "Model", "Session", "Stats", "Generation", "version", "set_memory_budget"]

# ---- library loading ------------------------------------------------------------------


def _find_library() -> str:
    env = os.environ.get("HPL_LIB")
    if env:
        return env
    candidates = []
    build = os.environ.get("HPL_BUILD_DIR")
    if build:
        candidates.append(Path(build) / "lib" / "libhpl.so")
    candidates.append(Path(__file__).resolve().parents[3] / "build" / "lib" / "libhpl.so")
    for c in candidates:
        if c.exists():
            return str(c)
    return "libhpl.so"


_lib = ctypes.CDLL(_find_library())

# ---- C declarations (mirror bindings/c/hpl.h) ----------------------------------------

OK = 0
STATUS_NAMES = {
    0: "OK", 1: "INVALID_ARGUMENT", 2: "IO", 3: "MODEL", 4: "CONTEXT_FULL",
    5: "OUT_OF_MEMORY", 6: "FAILED_STATE", 7: "SESSION_MISMATCH", 8: "BUSY",
    9: "WOULD_DEADLOCK", 10: "INTERNAL", 11: "NOT_FOUND", 12: "TIMEOUT",
}
EVENT_QUEUED, EVENT_PROCESSING, EVENT_TOKEN, EVENT_DONE, EVENT_ERROR = range(5)
FINISH_NAMES = {0: "end_of_generation", 1: "max_tokens", 2: "stop_string", 3: "stopped",
                4: "context_end"}


class _ModelParams(ctypes.Structure):
    _fields_ = [("n_threads", ctypes.c_int32), ("n_ctx", ctypes.c_int32),
                ("n_batch", ctypes.c_int32), ("use_mmap", ctypes.c_int32),
                ("max_consecutive_failures", ctypes.c_int32), ("cpus", ctypes.c_char_p)]


class _SamplerParams(ctypes.Structure):
    _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int32),
                ("top_p", ctypes.c_float), ("min_p", ctypes.c_float),
                ("repeat_penalty", ctypes.c_float), ("repeat_last_n", ctypes.c_int32),
                ("seed", ctypes.c_uint64)]


class _ChatMessage(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


class _RequestParams(ctypes.Structure):
    _fields_ = [("prompt", ctypes.c_char_p), ("messages", ctypes.POINTER(_ChatMessage)),
                ("n_messages", ctypes.c_size_t), ("sampler", _SamplerParams),
                ("max_tokens", ctypes.c_int32),
                ("stop_strings", ctypes.POINTER(ctypes.c_char_p)),
                ("n_stop_strings", ctypes.c_size_t)]


class _Stats(ctypes.Structure):
    _fields_ = [("prompt_tokens", ctypes.c_int32), ("completion_tokens", ctypes.c_int32),
                ("time_to_first_token_ms", ctypes.c_double),
                ("prefill_tokens_per_s", ctypes.c_double),
                ("decode_tokens_per_s", ctypes.c_double), ("queue_ms", ctypes.c_double),
                ("total_ms", ctypes.c_double), ("truncated", ctypes.c_int32),
                ("finish", ctypes.c_int), ("prefill_ms", ctypes.c_double),
                ("decode_ms", ctypes.c_double), ("sampling_ms", ctypes.c_double)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_uint64),
                ("text", ctypes.c_void_p), ("text_len", ctypes.c_size_t),
                ("status", ctypes.c_int), ("stats", _Stats)]


class _SessionInfo(ctypes.Structure):
    _fields_ = [("n_ctx", ctypes.c_int64), ("n_past", ctypes.c_int64),
                ("n_tokens", ctypes.c_int64), ("n_exchanges", ctypes.c_int64)]


class _MemoryInfo(ctypes.Structure):
    _fields_ = [("model_bytes", ctypes.c_uint64), ("kv_bytes", ctypes.c_uint64),
                ("scratch_bytes", ctypes.c_uint64), ("loaded_bytes", ctypes.c_uint64),
                ("budget_bytes", ctypes.c_uint64)]


_Callback = ctypes.CFUNCTYPE(None, ctypes.POINTER(_Event), ctypes.c_void_p)
_p = ctypes.c_void_p


def _fn(name, *argtypes):
    f = getattr(_lib, name)
    f.argtypes = list(argtypes)
    f.restype = ctypes.c_int
    return f


_lib.hpl_last_error.argtypes = []
_lib.hpl_last_error.restype = ctypes.c_char_p
_version = _fn("hpl_version", ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int),
               ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_char_p))
_set_budget = _fn("hpl_set_memory_budget", ctypes.c_uint64)
_memory_info = _fn("hpl_memory_info_get", _p, ctypes.POINTER(_MemoryInfo))
_model_params_init = _fn("hpl_model_params_init", ctypes.POINTER(_ModelParams))
_model_load = _fn("hpl_model_load", ctypes.c_char_p, ctypes.POINTER(_ModelParams),
                  ctypes.POINTER(_p))
_model_unload = _fn("hpl_model_unload", _p)
_model_failed = _fn("hpl_model_failed", _p, ctypes.POINTER(ctypes.c_int32))
_model_reset = _fn("hpl_model_reset", _p)
_session_create = _fn("hpl_session_create", _p, ctypes.POINTER(_p))
_session_free = _fn("hpl_session_free", _p)
_session_reset = _fn("hpl_session_reset", _p)
_session_restart = _fn("hpl_session_restart", _p, ctypes.c_int32)
_session_save = _fn("hpl_session_save", _p, ctypes.c_char_p)
_session_restore = _fn("hpl_session_restore", _p, ctypes.c_char_p)
_session_info = _fn("hpl_session_info_get", _p, ctypes.POINTER(_SessionInfo))
_request_params_init = _fn("hpl_request_params_init", ctypes.POINTER(_RequestParams))
_submit = _fn("hpl_submit", _p, _p, ctypes.POINTER(_RequestParams), _Callback, _p,
              ctypes.POINTER(ctypes.c_uint64))
_stop = _fn("hpl_stop", _p, ctypes.c_uint64)
_wait = _fn("hpl_wait", _p, ctypes.c_uint64, ctypes.c_int64)


class HplError(RuntimeError):
    """A failed call: .status is the hpl_status number, .name its name."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.name = STATUS_NAMES.get(status, str(status))
        super().__init__(f"{self.name}: {message}")


def _check(status: int) -> None:
    if status != OK:
        raise HplError(status, (_lib.hpl_last_error() or b"").decode("utf-8", "replace"))


def version() -> str:
    s = ctypes.c_char_p()
    _check(_version(None, None, None, ctypes.byref(s)))
    return s.value.decode()


def set_memory_budget(nbytes: int) -> None:
    """Budget for all loaded models (0 = unlimited); idle models are unloaded LRU-first."""
    _check(_set_budget(nbytes))


@dataclass
class Stats:
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token_ms: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    queue_ms: float
    total_ms: float
    truncated: bool
    finish: str
    prefill_ms: float = 0.0  # where total_ms went (queue_ms is before it)
    decode_ms: float = 0.0
    sampling_ms: float = 0.0

    @staticmethod
    def _from(s: _Stats) -> "Stats":
        return Stats(s.prompt_tokens, s.completion_tokens, s.time_to_first_token_ms,
                     s.prefill_tokens_per_s, s.decode_tokens_per_s, s.queue_ms, s.total_ms,
                     bool(s.truncated), FINISH_NAMES.get(s.finish, str(s.finish)),
                     s.prefill_ms, s.decode_ms, s.sampling_ms)


_live = {}
_live_lock = threading.Lock()
_next_key = [1]


def _register(gen) -> int:
    with _live_lock:
        key = _next_key[0]
        _next_key[0] += 1
        _live[key] = gen
        return key


def _unregister(key: int) -> None:
    with _live_lock:
        _live.pop(key, None)


def _dispatch(ev_ptr, user):
    ev = ev_ptr.contents
    key = user or 0
    with _live_lock:
        gen = _live.get(key)
    if gen is not None:
        gen._on_event(ev)
    if ev.type in (EVENT_DONE, EVENT_ERROR):
        _unregister(key)  # the request's last event


_DISPATCH = _Callback(_dispatch)


class Generation:
    """One request: iterate it for text pieces; .stop() ends it early (keeping the output so
    far); .stats is set when it is done; .text is everything generated."""

    def __init__(self, model: "Model", session: Optional["Session"], prompt, messages,
                 max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n,
                 seed, stop):
        self._model = model
        self._events: "queue.Queue[tuple]" = queue.Queue()
        self.stats: Optional[Stats] = None
        self.text = ""
        self.id = 0
        self._finished = False
        p = _RequestParams()
        _check(_request_params_init(ctypes.byref(p)))
        keep = []  # ctypes buffers that must live until hpl_submit returns
        if messages is not None:
            arr = (_ChatMessage * len(messages))()
            for i, (role, content) in enumerate(messages):
                arr[i].role = role.encode()
                arr[i].content = content.encode()
            keep.append(arr)
            p.messages = arr
            p.n_messages = len(messages)
        else:
            p.prompt = prompt.encode()
        stops = list(stop or [])
        if stops:
            sarr = (ctypes.c_char_p * len(stops))(*[s.encode() for s in stops])
            keep.append(sarr)
            p.stop_strings = sarr
            p.n_stop_strings = len(stops)
        p.max_tokens = max_tokens
        s = p.sampler
        if temperature is not None: s.temperature = temperature
        if top_k is not None: s.top_k = top_k
        if top_p is not None: s.top_p = top_p
        if min_p is not None: s.min_p = min_p
        if repeat_penalty is not None: s.repeat_penalty = repeat_penalty
        if repeat_last_n is not None: s.repeat_last_n = repeat_last_n
        if seed is not None: s.seed = seed
        # One module-level C callback serves every request (a per-request ctypes thunk could be
        # garbage-collected while the worker still runs it); user_data is this request's key.
        key = _register(self)
        rid = ctypes.c_uint64()
        try:
            _check(_submit(model._h, session._h if session else None, ctypes.byref(p),
                           _DISPATCH, ctypes.c_void_p(key), ctypes.byref(rid)))
        except Exception:
            _unregister(key)  # no event will come
            raise
        self.id = rid.value

    def _on_event(self, ev) -> None:  # worker thread (GIL taken by ctypes)
        text = ctypes.string_at(ev.text, ev.text_len).decode("utf-8", "replace") \
            if ev.text else ""
        self._events.put((ev.type, text, Stats._from(ev.stats), ev.status))

    def __iter__(self) -> Iterator[str]:
        try:
            while not self._finished:
                kind, text, stats, status = self._events.get()
                if kind == EVENT_TOKEN:
                    self.text += text
                    yield text
                elif kind == EVENT_DONE:
                    self._finished = True
                    self.stats = stats
                elif kind == EVENT_ERROR:
                    self._finished = True
                    self.stats = stats
                    raise HplError(status, text)
        finally:
            if not self._finished:  # the consumer left early: stop, then drain
                self.stop()
                self.wait()

    def stop(self) -> bool:
        """Stops the request; False if it had already finished."""
        if self._finished:
            return False
        return _stop(self._model._h, self.id) == OK

    def wait(self, timeout_ms: int = -1) -> None:
        """Blocks until the request has ended (consuming its events)."""
        _check(_wait(self._model._h, self.id, timeout_ms))
        while not self._finished:
            kind, text, stats, status = self._events.get()
            if kind == EVENT_TOKEN:
                self.text += text
            elif kind in (EVENT_DONE, EVENT_ERROR):
                self._finished = True
                self.stats = stats
                if kind == EVENT_ERROR:
                    raise HplError(status, text)

    def result(self) -> str:
        """Runs to the end and returns the whole text."""
        for _ in self:
            pass
        return self.text


class Model:
    """A loaded model with its worker thread. Use as a context manager or call close()."""

    def __init__(self, path: str, n_threads: int = 0, n_ctx: int = 2048, n_batch: int = 64,
                 use_mmap: bool = True, max_consecutive_failures: int = 3):
        self._h = None
        mp = _ModelParams()
        _check(_model_params_init(ctypes.byref(mp)))
        mp.n_threads, mp.n_ctx, mp.n_batch = n_threads, n_ctx, n_batch
        mp.use_mmap = 1 if use_mmap else 0
        mp.max_consecutive_failures = max_consecutive_failures
        h = _p()
        _check(_model_load(os.fsencode(path), ctypes.byref(mp), ctypes.byref(h)))
        self._h = h.value
        self._sessions = []
        self._lock = threading.Lock()

    def submit(self, prompt: Optional[str] = None, *, messages: Optional[Sequence] = None,
               session: Optional["Session"] = None, max_tokens: int = 128,
               temperature: Optional[float] = None, top_k: Optional[int] = None,
               top_p: Optional[float] = None, min_p: Optional[float] = None,
               repeat_penalty: Optional[float] = None, repeat_last_n: Optional[int] = None,
               seed: Optional[int] = None, stop: Optional[Sequence[str]] = None) -> Generation:
        """Queues a request and returns its Generation (iterate it for text pieces).
        messages: [(role, content), ...] instead of a prompt."""
        self._require_open()
        if (prompt is None) == (messages is None):
            raise ValueError("pass either a prompt or messages")
        return Generation(self, session, prompt, messages, max_tokens, temperature, top_k,
                          top_p, min_p, repeat_penalty, repeat_last_n, seed, stop)

    def generate(self, prompt: Optional[str] = None, **kw) -> Generation:
        """Iterator of text pieces (a Generation: it also has .stop() and .stats)."""
        return self.submit(prompt, **kw)

    def session(self) -> "Session":
        return Session(self)

    @property
    def failed(self) -> bool:
        f = ctypes.c_int32()
        _check(_model_failed(self._h, ctypes.byref(f)))
        return bool(f.value)

    def reset(self) -> None:
        """Leaves the failed state (circuit breaker)."""
        _check(_model_reset(self._h))

    def memory(self) -> dict:
        m = _MemoryInfo()
        _check(_memory_info(self._h, ctypes.byref(m)))
        return {f: getattr(m, f) for f, _ in _MemoryInfo._fields_}

    def _require_open(self):
        if not self._h:
            raise HplError(1, "the model is closed")

    def close(self) -> None:
        if self._h:
            for s in list(self._sessions):
                s.close()
            _check(_model_unload(self._h))
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Session:
    """A conversation on a model: its KV cache is kept between turns."""

    def __init__(self, model: Model):
        model._require_open()
        self.model = model
        h = _p()
        _check(_session_create(model._h, ctypes.byref(h)))
        self._h = h.value
        model._sessions.append(self)

    def generate(self, prompt: Optional[str] = None, **kw) -> Generation:
        return self.model.submit(prompt, session=self, **kw)

    submit = generate

    def reset(self) -> None:
        _check(_session_reset(self._h))

    def restart(self, keep_last: int) -> None:
        """Start over with the last keep_last exchanges (after a CONTEXT_FULL error)."""
        _check(_session_restart(self._h, keep_last))

    def save(self, path: str) -> None:
        _check(_session_save(self._h, os.fsencode(path)))

    def restore(self, path: str) -> None:
        _check(_session_restore(self._h, os.fsencode(path)))

    def info(self) -> dict:
        i = _SessionInfo()
        _check(_session_info(self._h, ctypes.byref(i)))
        return {f: getattr(i, f) for f, _ in _SessionInfo._fields_}

    def close(self) -> None:
        if self._h:
            _check(_session_free(self._h))
            self._h = None
            self.model._sessions.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
