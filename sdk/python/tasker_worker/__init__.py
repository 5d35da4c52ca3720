"""Tasker's Python worker: runs tasker-core style handlers for ``tasker serve``.

``python3 -m tasker_worker --server URL --namespace NS --handlers DIR``; see
docs/workers.md.
"""
from .discovery import load_handlers
from .runtime import Worker
from .transport import HTTPTransport, NotRegistered, Transport, TransportError

__all__ = ["Worker", "HTTPTransport", "Transport", "TransportError", "NotRegistered", "load_handlers"]
