"""Read-only wrappers over an event's task_sequence_step dict."""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional


def _unwrap(v: Any) -> Any:
    return v["result"] if isinstance(v, dict) and "result" in v else v


class _Wrapper:
    def __init__(self, data: Optional[Dict[str, Any]]) -> None:
        self._data = data or {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._data.get(name)

    def to_dict(self) -> Dict[str, Any]:
        return dict(self._data)


class TaskWrapper(_Wrapper):
    def __init__(self, data: Optional[Dict[str, Any]]) -> None:
        outer = data or {}
        inner = dict(outer.get("task") or {})
        for k in ("task_name", "task_version", "namespace_name"):
            inner.setdefault(k, outer.get(k))
        super().__init__(inner)


class WorkflowStepWrapper(_Wrapper):
    pass


class HandlerWrapper(_Wrapper):
    pass


class StepDefinitionWrapper(_Wrapper):
    @property
    def handler(self) -> HandlerWrapper:
        return HandlerWrapper(self._data.get("handler"))


class DependencyResultsWrapper:
    def __init__(self, data: Optional[Dict[str, Any]]) -> None:
        self._data = data or {}

    def get_result(self, name: str) -> Any:
        return self._data.get(name)

    def get_results(self, name: str) -> Any:
        return _unwrap(self._data.get(name))

    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def keys(self) -> List[str]:
        return list(self._data.keys())

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __contains__(self, name: object) -> bool:
        return name in self._data


class TaskSequenceStepWrapper:
    def __init__(self, data: Optional[Dict[str, Any]]) -> None:
        self._data = data or {}
        self.task = TaskWrapper(self._data.get("task"))
        self.workflow_step = WorkflowStepWrapper(self._data.get("workflow_step"))
        self.dependency_results = DependencyResultsWrapper(self._data.get("dependency_results"))
        self.step_definition = StepDefinitionWrapper(self._data.get("step_definition"))

    def get_task_field(self, key: str) -> Any:
        return getattr(self.task, key)

    def get_dependency_result(self, name: str) -> Any:
        return self.dependency_results.get_results(name)

    def get_results(self, name: str) -> Any:
        return self.dependency_results.get_results(name)
