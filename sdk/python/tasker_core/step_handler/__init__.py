"""Class-style handler bases and the functional decorators."""
from . import mixins
from .base import StepHandler
from .functional import (BatchConfig, Decision, FunctionalHandler, HandlerDecorator, api_handler, batch_analyzer,
                         batch_worker, decision_handler, depends_on, inputs, step_handler)
from .mixins import APIMixin, ApiResponse, DecisionMixin


class ApiHandler(APIMixin, StepHandler):
    @property
    def capabilities(self):  # type: ignore[override]
        return ["process", "http", "api"]


class DecisionHandler(DecisionMixin, StepHandler):
    @property
    def capabilities(self):  # type: ignore[override]
        return ["process", "decision", "routing"]


__all__ = ["StepHandler", "ApiHandler", "ApiResponse", "DecisionHandler", "mixins", "api_handler", "batch_worker",
           "BatchConfig", "Decision", "FunctionalHandler", "HandlerDecorator", "step_handler", "depends_on", "inputs",
           "decision_handler", "batch_analyzer", "APIMixin", "DecisionMixin"]
