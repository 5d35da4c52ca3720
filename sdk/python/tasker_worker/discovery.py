"""Finding handlers: every module of a package directory is imported."""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys

from tasker_core.handler import HandlerRegistry


def load_handlers(directory: str, registry: HandlerRegistry) -> int:
    """Imports every module of the package at directory (its parent goes on
    sys.path, so the package's relative imports work) and registers the
    handlers found: StepHandler subclasses with a handler_name, and
    decorated functions. Returns how many."""
    path = os.path.abspath(directory.rstrip("/"))
    if not os.path.isdir(path):
        raise ValueError(f"--handlers {directory}: not a directory: give the handlers' package directory")
    parent, name = os.path.split(path)
    if not name.isidentifier():
        raise ValueError(f"--handlers {directory}: {name!r} is not a Python package name")
    if parent not in sys.path:
        sys.path.insert(0, parent)
    pkg = importlib.import_module(name)
    n = registry.discover_module(pkg)
    for info in pkgutil.walk_packages([path], name + "."):
        n += registry.discover_module(importlib.import_module(info.name))
    return n
