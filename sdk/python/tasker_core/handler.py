"""HandlerRegistry: registration, discovery and resolution of handlers."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import threading
from typing import Any, Dict, List, Optional

from .step_handler.base import StepHandler

_CLASS_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\.[A-Z][A-Za-z0-9_]*$")


class ResolverNotFoundError(Exception):
    pass


class HandlerDefinition:
    def __init__(self, callable: str, handler_method: Optional[str] = None, resolver: Optional[str] = None,  # noqa: A002
                 initialization: Optional[Dict[str, Any]] = None) -> None:
        self.callable = callable
        self.handler_method = handler_method
        self.resolver = resolver
        self.initialization = initialization if initialization is not None else {}


def instantiate(cls: type, config: Optional[Dict[str, Any]] = None) -> Any:
    """A fresh instance: ``cls()``, or ``cls(config=...)`` if that raises TypeError."""
    try:
        return cls()
    except TypeError:
        return cls(config=config or {})


class HandlerRegistry:
    _instance: Optional["HandlerRegistry"] = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._handlers: Dict[str, type] = {}
        self.resolver_chain = ["explicit_mapping", "class_lookup"]

    @classmethod
    def instance(cls, skip_bootstrap: bool = False) -> "HandlerRegistry":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @classmethod
    def reset_instance(cls) -> None:
        with cls._lock:
            cls._instance = None

    def register(self, name: str, handler_class: type) -> None:
        if not (inspect.isclass(handler_class) and issubclass(handler_class, StepHandler)):
            raise ValueError(f"{handler_class!r} is not a StepHandler subclass")
        self._handlers[name] = handler_class

    def unregister(self, name: str) -> bool:
        return self._handlers.pop(name, None) is not None

    def get_handler_class(self, name: str) -> Optional[type]:
        return self._handlers.get(name)

    def is_registered(self, name: str) -> bool:
        return name in self._handlers

    def list_handlers(self) -> List[str]:
        return list(self._handlers)

    def handler_count(self) -> int:
        return len(self._handlers)

    def clear(self) -> None:
        self._handlers.clear()

    def resolve_class(self, key: str) -> Optional[type]:
        """The class for key: an explicit registration, else a class path (module.ClassName)."""
        if key in self._handlers:
            return self._handlers[key]
        if _CLASS_PATH.match(key):
            mod, _, attr = key.rpartition(".")
            try:
                cls = getattr(importlib.import_module(mod), attr, None)
            except Exception:  # noqa: BLE001 - an unimportable path resolves to nothing
                return None
            return cls if inspect.isclass(cls) else None
        return None

    def resolve(self, spec: Any) -> Any:
        key = spec if isinstance(spec, str) else getattr(spec, "callable", None)
        if not key:
            return None
        cls = self.resolve_class(key)
        if cls is None:
            return None
        try:
            return instantiate(cls, getattr(spec, "initialization", None))
        except Exception:  # noqa: BLE001
            return None

    def discover_module(self, module: Any) -> int:
        n = 0
        for value in list(vars(module).values()):
            if inspect.isclass(value) and issubclass(value, StepHandler) and value is not StepHandler \
                    and getattr(value, "handler_name", ""):
                self.register(value.handler_name, value)
                n += 1
            elif callable(value) and hasattr(value, "_handler_class"):
                cls = value._handler_class
                self.register(cls.handler_name, cls)
                n += 1
        return n

    def discover_handlers(self, package_name: str, base_class: Optional[type] = None) -> int:
        pkg = importlib.import_module(package_name)
        n = self.discover_module(pkg)
        for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), package_name + "."):
            n += self.discover_module(importlib.import_module(info.name))
        return n

    def bootstrap_handlers(self) -> int:
        return self.handler_count()


__all__ = ["HandlerRegistry", "HandlerDefinition", "ResolverNotFoundError", "instantiate"]
