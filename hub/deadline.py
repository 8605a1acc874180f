"""The call a piece of work is done for, so that work nobody waits for any more is never started.

The admission interceptor binds each call's deadline and a "gone" flag (set when the call ends, e.g.
cancelled by its client) to a context variable; `Database.run` checks it just before a transaction
starts, in the worker thread. A dropped transaction applied nothing: units of work are all-or-nothing.
Work that must finish whoever waits for it (settling a round already opened) runs `detached()`.
"""

import contextvars
import threading
import time
from dataclasses import dataclass, field

# A transaction started with less time left than this would answer after the caller gave up.
MIN_TIME_LEFT_S = 0.005


class CallerGone(Exception):
    """The caller's deadline passed (or too little of it is left), or the call ended: nothing was done."""

    def __init__(self, message: str, deadline_exceeded: bool):
        super().__init__(message)
        self.deadline_exceeded = deadline_exceeded


@dataclass
class Caller:
    deadline: float | None  # time.monotonic() seconds; None: the client set no deadline
    gone: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Raise CallerGone unless the caller still waits, with time to spare. Safe in any thread."""
        if self.gone.is_set():
            raise CallerGone("the call ended before its work started; nothing was applied", False)
        if self.deadline is not None and self.deadline - time.monotonic() < MIN_TIME_LEFT_S:
            raise CallerGone("the deadline passed before the work started; nothing was applied", True)


_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def bind(caller: Caller) -> contextvars.Token[Caller | None]:
    return _CALLER.set(caller)


def current() -> Caller | None:
    return _CALLER.get()


def detached() -> None:
    """From here on, this task's work runs even if the call that started it is gone (call it in a task
    of its own: asyncio gives each task a copy of the context, so the call itself is unaffected)."""
    _CALLER.set(None)
