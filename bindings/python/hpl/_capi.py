"""ctypes declarations of the C API (bindings/c/hpl.h) and where libhpl.so is found.

The library is, in order: $HPL_LIB (the .so itself), the copy installed inside this package
(pip install), $HPL_BUILD_DIR/lib, <repo>/build/lib (a source checkout), the loader's path.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any, List

from .errors import error_for

OK = 0
EVENT_QUEUED, EVENT_PROCESSING, EVENT_TOKEN, EVENT_DONE, EVENT_ERROR = range(5)
MODEL_KIND_NAMES = {0: "generate", 1: "embed", 2: "rerank"}
POOLING_VALUES = {None: -1, "mean": 1, "cls": 2, "last": 3}
FINISH_NAMES = {0: "end_of_generation", 1: "max_tokens", 2: "stop_string", 3: "stopped",
                4: "context_end"}


def _candidates() -> List[Path]:
    here = Path(__file__).resolve().parent
    out = []
    env = os.environ.get("HPL_LIB")
    if env:
        return [Path(env)]
    out.append(here / "libhpl.so")
    build = os.environ.get("HPL_BUILD_DIR")
    if build:
        out.append(Path(build) / "lib" / "libhpl.so")
    if len(here.parents) >= 3:
        out.append(here.parents[2] / "build" / "lib" / "libhpl.so")
    return out


def _find_library() -> str:
    for c in _candidates():
        if c.exists():
            return str(c)
    return "libhpl.so"


library_path: str = _find_library()
lib = ctypes.CDLL(library_path)


class ModelParams(ctypes.Structure):
    _fields_ = [("n_threads", ctypes.c_int32), ("n_ctx", ctypes.c_int32),
                ("n_ubatch", ctypes.c_int32), ("prefault", ctypes.c_int32),
                ("max_consecutive_failures", ctypes.c_int32), ("cpus", ctypes.c_char_p),
                ("cache_type", ctypes.c_char_p),
                ("draft_model", ctypes.c_char_p), ("lookup", ctypes.c_int32),
                ("draft_max", ctypes.c_int32), ("draft_min", ctypes.c_int32)]


class SamplerParams(ctypes.Structure):
    _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int32),
                ("top_p", ctypes.c_float), ("min_p", ctypes.c_float),
                ("repeat_penalty", ctypes.c_float), ("repeat_last_n", ctypes.c_int32),
                ("seed", ctypes.c_uint64)]


class ChatMessage(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


class RequestParams(ctypes.Structure):
    _fields_ = [("prompt", ctypes.c_char_p), ("messages", ctypes.POINTER(ChatMessage)),
                ("n_messages", ctypes.c_size_t), ("sampler", SamplerParams),
                ("max_tokens", ctypes.c_int32),
                ("stop_strings", ctypes.POINTER(ctypes.c_char_p)),
                ("n_stop_strings", ctypes.c_size_t), ("cache_prompt", ctypes.c_int32),
                ("grammar", ctypes.c_char_p), ("json_schema", ctypes.c_char_p)]


class Stats(ctypes.Structure):
    _fields_ = [("prompt_tokens", ctypes.c_int32), ("completion_tokens", ctypes.c_int32),
                ("time_to_first_token_ms", ctypes.c_double),
                ("prefill_tokens_per_s", ctypes.c_double),
                ("decode_tokens_per_s", ctypes.c_double), ("queue_ms", ctypes.c_double),
                ("total_ms", ctypes.c_double), ("truncated", ctypes.c_int32),
                ("finish", ctypes.c_int), ("prefill_ms", ctypes.c_double),
                ("decode_ms", ctypes.c_double), ("sampling_ms", ctypes.c_double),
                ("cached_tokens", ctypes.c_int32),
                ("drafted", ctypes.c_int32), ("accepted", ctypes.c_int32)]


class Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_uint64),
                ("text", ctypes.c_void_p), ("text_len", ctypes.c_size_t),
                ("status", ctypes.c_int), ("stats", Stats),
                ("outputs", ctypes.POINTER(ctypes.c_float)), ("n_outputs", ctypes.c_int32),
                ("dim", ctypes.c_int32)]


class ModelInfo(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("n_embd", ctypes.c_int32),
                ("n_ctx_embed", ctypes.c_int32)]


class EmbedParams(ctypes.Structure):
    _fields_ = [("pooling", ctypes.c_int), ("normalize", ctypes.c_int32),
                ("truncate", ctypes.c_int32)]


class SessionInfo(ctypes.Structure):
    _fields_ = [("n_ctx", ctypes.c_int64), ("n_past", ctypes.c_int64),
                ("n_tokens", ctypes.c_int64), ("n_exchanges", ctypes.c_int64)]


class MemoryInfo(ctypes.Structure):
    _fields_ = [("model_bytes", ctypes.c_uint64), ("kv_bytes", ctypes.c_uint64),
                ("scratch_bytes", ctypes.c_uint64), ("loaded_bytes", ctypes.c_uint64),
                ("budget_bytes", ctypes.c_uint64)]


Callback = ctypes.CFUNCTYPE(None, ctypes.POINTER(Event), ctypes.c_void_p)
_p = ctypes.c_void_p
_i32p = ctypes.POINTER(ctypes.c_int32)
_szp = ctypes.POINTER(ctypes.c_size_t)


def _fn(name: str, *argtypes: Any) -> Any:
    # CDLL functions release the GIL for the duration of the call, so a blocking call (wait,
    # unload, session save) never keeps the worker's callbacks from running.
    f = getattr(lib, name)
    f.argtypes = list(argtypes)
    f.restype = ctypes.c_int
    return f


lib.hpl_last_error.argtypes = []
lib.hpl_last_error.restype = ctypes.c_char_p
version = _fn("hpl_version", ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int),
              ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_char_p))
set_memory_budget = _fn("hpl_set_memory_budget", ctypes.c_uint64)
memory_info = _fn("hpl_memory_info_get", _p, ctypes.POINTER(MemoryInfo))
model_params_init = _fn("hpl_model_params_init", ctypes.POINTER(ModelParams))
model_load = _fn("hpl_model_load", ctypes.c_char_p, ctypes.POINTER(ModelParams),
                 ctypes.POINTER(_p))
model_unload = _fn("hpl_model_unload", _p)
model_failed = _fn("hpl_model_failed", _p, _i32p)
model_reset = _fn("hpl_model_reset", _p)
session_create = _fn("hpl_session_create", _p, ctypes.POINTER(_p))
session_free = _fn("hpl_session_free", _p)
session_reset = _fn("hpl_session_reset", _p)
session_restart = _fn("hpl_session_restart", _p, ctypes.c_int32)
session_save = _fn("hpl_session_save", _p, ctypes.c_char_p)
session_restore = _fn("hpl_session_restore", _p, ctypes.c_char_p)
prefix_save = _fn("hpl_prefix_save", _p, ctypes.POINTER(RequestParams), ctypes.c_char_p)
prefix_load = _fn("hpl_prefix_load", _p, ctypes.c_char_p, ctypes.POINTER(RequestParams),
                  ctypes.POINTER(ctypes.c_int64))
session_info = _fn("hpl_session_info_get", _p, ctypes.POINTER(SessionInfo))
request_params_init = _fn("hpl_request_params_init", ctypes.POINTER(RequestParams))
submit = _fn("hpl_submit", _p, _p, ctypes.POINTER(RequestParams), Callback, _p,
             ctypes.POINTER(ctypes.c_uint64))
_strv = ctypes.POINTER(ctypes.c_char_p)
model_info = _fn("hpl_model_info_get", _p, ctypes.POINTER(ModelInfo))
embed_params_init = _fn("hpl_embed_params_init", ctypes.POINTER(EmbedParams))
submit_embed = _fn("hpl_submit_embed", _p, _strv, ctypes.c_size_t, ctypes.POINTER(EmbedParams),
                   Callback, _p, ctypes.POINTER(ctypes.c_uint64))
submit_rerank = _fn("hpl_submit_rerank", _p, ctypes.c_char_p, _strv, ctypes.c_size_t,
                    ctypes.c_int32, Callback, _p, ctypes.POINTER(ctypes.c_uint64))
stop = _fn("hpl_stop", _p, ctypes.c_uint64)
wait = _fn("hpl_wait", _p, ctypes.c_uint64, ctypes.c_int64)
wait_idle = _fn("hpl_wait_idle", _p)
tokenize = _fn("hpl_tokenize", _p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int32,
               ctypes.c_int32, _i32p, ctypes.c_size_t, _szp)
detokenize = _fn("hpl_detokenize", _p, _i32p, ctypes.c_size_t, ctypes.c_int32, ctypes.c_char_p,
                 ctypes.c_size_t, _szp)


def last_error() -> str:
    return (lib.hpl_last_error() or b"").decode("utf-8", "replace")


def check(status: int) -> None:
    """Raises the HplError for a failed status, with this thread's last error message."""
    if status != OK:
        raise error_for(status, last_error())
