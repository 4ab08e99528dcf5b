"""The switch the testing modes turn (``faktory.testing.fake()`` / ``inline()``).

``current`` is ``None`` in normal operation.  Inside a testing mode it is an object with
``push(payloads)`` (blocking callers: ``SyncClient``, ``Task.push_sync``) and
``async apush(payloads)`` (``Client``, ``Task.push``), given the validated payloads that
would have been sent; the clients then send nothing.  Kept in a module of its own, with no
imports, so the clients can look at it on every push for the price of one attribute read.
"""
from __future__ import annotations

from typing import Any

#: The active testing mode, or None (normal operation: jobs go to the server).
current: Any = None
