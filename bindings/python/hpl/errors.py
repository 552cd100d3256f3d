"""Exceptions: every failed C call raises HplError (or a subclass) carrying the C API's status
code, its name and the library's message (hpl_last_error() of the failing call)."""

from __future__ import annotations

from typing import Any, Dict, Tuple, Type

# hpl_status values (bindings/c/hpl.h) -> names.
STATUS_NAMES: Dict[int, str] = {
    0: "OK", 1: "INVALID_ARGUMENT", 2: "IO", 3: "MODEL", 4: "CONTEXT_FULL",
    5: "OUT_OF_MEMORY", 6: "FAILED_STATE", 7: "SESSION_MISMATCH", 8: "BUSY",
    9: "WOULD_DEADLOCK", 10: "INTERNAL", 11: "NOT_FOUND", 12: "TIMEOUT",
}


class HplError(RuntimeError):
    """A failed call into libhpl.

    Attributes:
        status: the hpl_status number (e.g. 4).
        name: its name without the prefix (e.g. "CONTEXT_FULL").
        message: the library's message, e.g. "context full: need 40, have 32".
    """

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.name = STATUS_NAMES.get(status, str(status))
        self.message = message
        super().__init__(f"{self.name}: {message}")

    def __reduce__(self) -> Tuple[Any, Tuple[int, str]]:  # picklable across processes despite the 2-argument constructor
        return (error_for, (self.status, self.message))


class InvalidArgumentError(HplError, ValueError):
    """HPL_ERR_INVALID_ARGUMENT: a bad parameter or input."""


class ModelFileError(HplError, OSError):
    """HPL_ERR_IO or HPL_ERR_MODEL: the file cannot be read, or is corrupt or unsupported."""


class ContextFullError(HplError):
    """HPL_ERR_CONTEXT_FULL: the turn does not fit the context; the message gives the sizes."""


class FailedStateError(HplError):
    """HPL_ERR_FAILED_STATE: too many failed requests in a row; call Model.reset()."""


class SessionMismatchError(HplError):
    """HPL_ERR_SESSION_MISMATCH: a session file saved from another model."""


_SUBCLASS: Dict[int, Type[HplError]] = {
    1: InvalidArgumentError, 2: ModelFileError, 3: ModelFileError, 4: ContextFullError,
    6: FailedStateError, 7: SessionMismatchError,
}


def error_for(status: int, message: str) -> HplError:
    """The exception for a status code (the most specific subclass)."""
    return _SUBCLASS.get(status, HplError)(status, message)
