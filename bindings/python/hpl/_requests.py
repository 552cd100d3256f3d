"""One request's events, from the model's worker thread to the caller.

libhpl calls one module-level C callback for every event (a per-request ctypes thunk could be
garbage-collected while the worker still runs it); user_data is a key into _sinks. The
callback only copies the event into a queue (a SimpleQueue for iteration on a thread, the
event loop's asyncio.Queue via call_soon_threadsafe for async iteration): no user code and no
lock is ever run on the worker thread, so a callback cannot deadlock with a Python thread that
holds the GIL or a lock while it calls into libhpl (every ctypes call releases the GIL).

A sink never references its Generation, so dropping the Generation (break out of the loop,
garbage collection) runs its __del__, which stops the request.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import queue
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, Generator, Iterator,
                    List, Optional, Set, Tuple)

from . import _capi
from .errors import HplError, error_for

if TYPE_CHECKING:
    from .model import Model, Session


@dataclass(frozen=True)
class Stats:
    """What a finished request reports (hpl_stats)."""

    prompt_tokens: int  #: tokens evaluated for this turn (new tokens only)
    completion_tokens: int  #: tokens generated
    time_to_first_token_ms: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    queue_ms: float  #: time spent queued
    total_ms: float  #: from prompt evaluation start to the end
    truncated: bool  #: stopped before a natural end
    #: "end_of_generation", "max_tokens", "stop_string", "stopped" or "context_end"
    finish: str
    #: where total_ms went (queue_ms is before it): prompt, single-token evaluations, sampling
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    sampling_ms: float = 0.0
    #: stateless requests: prompt tokens reused from the prompt cache (not in prompt_tokens)
    cached_tokens: int = 0

    @staticmethod
    def _from(s: _capi.Stats) -> "Stats":
        return Stats(s.prompt_tokens, s.completion_tokens, s.time_to_first_token_ms,
                     s.prefill_tokens_per_s, s.decode_tokens_per_s, s.queue_ms, s.total_ms,
                     bool(s.truncated), _capi.FINISH_NAMES.get(s.finish, str(s.finish)),
                     s.prefill_ms, s.decode_ms, s.sampling_ms, s.cached_tokens)


# (event type, text, stats or None, status)
_Item = Tuple[int, str, Optional[Stats], int]


class _Sink:
    __slots__ = ("put", "owners")

    def __init__(self, put: Callable[[_Item], None], owners: List[Set[int]]) -> None:
        self.put = put
        self.owners = owners  # live-request id sets of the model (and session): kept current


_sinks: Dict[int, _Sink] = {}
_keys = itertools.count(1)


def _dispatch(ev_ptr: Any, user: Optional[int]) -> None:
    # Any thread (see hpl.h); ctypes holds the GIL here. Must not raise.
    try:
        ev = ev_ptr.contents
        key = user or 0
        sink = _sinks.get(key)
        if sink is None:
            return
        kind = ev.type
        if kind == _capi.EVENT_QUEUED:
            for s in sink.owners:
                s.add(ev.id)
            return
        if kind == _capi.EVENT_PROCESSING:
            return
        text = ctypes.string_at(ev.text, ev.text_len).decode("utf-8", "replace") \
            if ev.text and ev.text_len else ""
        terminal = kind in (_capi.EVENT_DONE, _capi.EVENT_ERROR)
        stats = Stats._from(ev.stats) if terminal else None
        if terminal:
            _sinks.pop(key, None)
            for s in sink.owners:
                s.discard(ev.id)
        sink.put((kind, text, stats, ev.status))
    except BaseException:  # noqa: BLE001 - nothing may propagate into C
        pass


_DISPATCH = _capi.Callback(_dispatch)


class _Request:
    """What sync and async requests share: submission and event bookkeeping."""

    id: int

    def __init__(self, model: "Model", session: Optional["Session"],
                 params: _capi.RequestParams, put: Callable[[_Item], None]) -> None:
        self._model = model
        self._pieces: List[str] = []
        self.stats: Optional[Stats] = None
        self.id = 0
        self._done = False
        self._error: Optional[HplError] = None
        owners = [model._requests] + ([session._requests] if session is not None else [])
        key = next(_keys)
        _sinks[key] = _Sink(put, owners)
        rid = ctypes.c_uint64()
        try:
            with model._handle.use() as mh:
                sh = None
                if session is not None:
                    with session._handle.use() as s:
                        sh = s
                        _capi.check(_capi.submit(mh, sh, ctypes.byref(params), _DISPATCH,
                                                 ctypes.c_void_p(key), ctypes.byref(rid)))
                else:
                    _capi.check(_capi.submit(mh, None, ctypes.byref(params), _DISPATCH,
                                             ctypes.c_void_p(key), ctypes.byref(rid)))
        except BaseException:
            _sinks.pop(key, None)  # no event will come
            raise
        self.id = rid.value

    @property
    def text(self) -> str:
        """Everything generated so far."""
        return "".join(self._pieces)

    @property
    def done(self) -> bool:
        """True once the request's terminal event has been taken."""
        return self._done

    def _take(self, item: _Item) -> Optional[str]:
        """Applies one event; returns the piece of a token event."""
        kind, text, stats, status = item
        if kind == _capi.EVENT_TOKEN:
            self._pieces.append(text)
            return text
        self._done = True
        self.stats = stats
        if kind == _capi.EVENT_ERROR:
            self._error = error_for(status, text)
            raise self._error
        return None

    def stop(self) -> bool:
        """Stops the request after its current token (or prompt micro-batch); the output so far
        is kept. False if it had already finished."""
        if self._done:
            return False
        return self._model._stop_request(self.id)

    def __del__(self) -> None:
        # Garbage collection (e.g. a loop left with break): stop, never block.
        try:
            if not self._done and self.id:
                self._model._stop_request(self.id, blocking=False)
        except BaseException:  # noqa: BLE001
            pass


class Generation(_Request, Iterator[str]):
    """A running request, iterated for its text pieces on any Python thread.

    Leaving the loop early stops the request: ``break`` (then garbage collection), an
    exception, ``close()``, or a ``with`` block. ``stats`` is set when it has finished and
    ``text`` holds everything generated so far.
    """

    def __init__(self, model: "Model", session: Optional["Session"],
                 params: _capi.RequestParams) -> None:
        self._q: "queue.SimpleQueue[_Item]" = queue.SimpleQueue()
        super().__init__(model, session, params, self._q.put)

    def __iter__(self) -> "Generation":
        return self

    def __next__(self) -> str:
        while not self._done:
            piece = self._take(self._q.get())
            if piece is not None:
                return piece
        raise StopIteration

    def wait(self, timeout: Optional[float] = None) -> None:
        """Blocks until the request has ended (consuming its pieces into ``text``). Raises
        HplError if it failed, TimeoutError when timeout (seconds) expires first."""
        while not self._done:
            try:
                item = self._q.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"request {self.id} still running after {timeout} s") from None
            self._take(item)

    def result(self) -> str:
        """Runs to the end and returns the whole text."""
        self.wait()
        return self.text

    def close(self) -> None:
        """Stops the request if it is still running and waits for its end (errors dropped)."""
        if not self._done:
            self.stop()
            try:
                self.wait()
            except HplError:
                pass

    def __enter__(self) -> "Generation":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGeneration(_Request, AsyncIterator[str]):
    """A running request for asyncio: ``async for piece in gen`` streams the pieces, ``await
    gen`` gives the whole text. Create it inside a running event loop. Leaving the loop
    (``aclose()``, ``async with``, garbage collection, or cancelling the awaiting task) stops
    the request."""

    def __init__(self, model: "Model", session: Optional["Session"],
                 params: _capi.RequestParams) -> None:
        loop = asyncio.get_running_loop()
        q: "asyncio.Queue[_Item]" = asyncio.Queue()
        self._q = q

        def put(item: _Item) -> None:  # worker thread
            try:
                loop.call_soon_threadsafe(q.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening
                pass

        super().__init__(model, session, params, put)

    def __aiter__(self) -> "AsyncGeneration":
        return self

    async def __anext__(self) -> str:
        while not self._done:
            try:
                item = await self._q.get()
            except asyncio.CancelledError:
                self.stop()
                raise
            piece = self._take(item)
            if piece is not None:
                return piece
        raise StopAsyncIteration

    async def result(self) -> str:
        """Runs to the end and returns the whole text."""
        async for _ in self:
            pass
        return self.text

    def __await__(self) -> Generator[Any, None, str]:
        return self.result().__await__()

    async def aclose(self) -> None:
        """Stops the request if it is still running and waits for its end (errors dropped)."""
        if not self._done:
            self.stop()
            try:
                async for _ in self:
                    pass
            except HplError:
                pass

    async def __aenter__(self) -> "AsyncGeneration":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
