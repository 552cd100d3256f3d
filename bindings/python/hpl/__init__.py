"""happy-phone-llm for Python: a typed API over libhpl (the C API), plus a llama-cpp-python
compatible ``Llama``.

    import hpl
    with hpl.Model("stories260K.gguf", n_ctx=512, n_threads=2) as model:
        print(model.generate("Once upon a time", max_tokens=32, temperature=0))
        for piece in model.generate("The dragon", stream=True, max_tokens=32):
            print(piece, end="", flush=True)
        with model.session() as chat:            # keeps the KV cache between turns
            chat.chat("Hello", max_tokens=16)
            chat.save("chat.session")

Requests run on the model's worker thread in submission order; pieces reach the caller
through a queue, so iterating never runs inference on the caller's thread, and leaving a loop
early (break, close(), an exception, garbage collection) stops the request. Every failure
raises HplError (or a subclass) with the C API's status and message.
"""

from ._requests import AsyncGeneration, Generation, Stats
from .errors import (ContextFullError, FailedStateError, HplError, InvalidArgumentError,
                     ModelFileError, SessionMismatchError)
from .llama import Llama
from .model import Message, MemoryInfo, Model, Session, SessionInfo, set_memory_budget, version

__all__ = [
    "AsyncGeneration", "ContextFullError", "FailedStateError", "Generation", "HplError",
    "InvalidArgumentError", "Llama", "MemoryInfo", "Message", "Model", "ModelFileError",
    "Session", "SessionInfo", "SessionMismatchError", "Stats", "set_memory_budget", "version",
]
__version__ = "0.1.0"
