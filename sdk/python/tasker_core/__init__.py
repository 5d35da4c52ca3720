"""tasker-core's Python handler API, for handlers run by Tasker's Python worker.

Handler files written for tasker-core import from here unchanged; docs/workers.md
lists what matches tasker-core, the quirks kept, and what differs.
"""
import logging as _logging
from typing import Any, Dict, Optional

from . import errors, types
from .batch_processing import BatchAggregationScenario, Batchable, BatchWorkerConfig
from .errors import (AuthenticationError, AuthorizationError, BusinessLogicError, ConfigurationError, ErrorClassifier,
                     NetworkError, NotFoundError, PermanentError, RateLimitError, ResourceContentionError,
                     RetryableError, ServiceUnavailableError, get_classifier, is_permanent, is_retryable)
from .errors import TimeoutError as StepTimeoutError
from .errors import ValidationError as StepValidationError
from .exceptions import FFIError, TaskerError  # Quirk kept: the bootstrap exceptions, not errors.*
from .handler import HandlerDefinition, HandlerRegistry, ResolverNotFoundError
from .models import (DependencyResultsWrapper, HandlerWrapper, StepDefinitionWrapper, TaskSequenceStepWrapper,
                     TaskWrapper, WorkflowStepWrapper)
from .step_handler import ApiHandler, ApiResponse, DecisionHandler, StepHandler
from .step_handler.functional import (BatchConfig, Decision, api_handler, batch_analyzer, batch_worker,
                                      decision_handler, depends_on, inputs, step_handler)
from .types import (BatchAggregationResult, BatchAnalyzerOutcome, BatchMetadata, BatchWorkerContext,
                    BatchWorkerOutcome, CreateBatchesOutcome, CursorConfig, DecisionPointOutcome, DecisionType,
                    ErrorType, FailureStrategy, FfiStepEvent, NoBatchesOutcome, ResultStatus, RustBatchWorkerInputs,
                    RustCursorConfig, StepContext, StepError, StepExecutionResult, StepHandlerResult,
                    aggregate_batch_results, create_batches, no_batches)

_log = _logging.getLogger("tasker_core")


def _emit(level: int, message: str, fields: Optional[Dict[str, Any]] = None) -> None:
    _log.log(level, message, extra={"fields": fields or {}})


def log_trace(message: str, fields: Optional[Dict[str, Any]] = None) -> None:
    _emit(5, message, fields)


def log_debug(message: str, fields: Optional[Dict[str, Any]] = None) -> None:
    _emit(_logging.DEBUG, message, fields)


def log_info(message: str, fields: Optional[Dict[str, Any]] = None) -> None:
    _emit(_logging.INFO, message, fields)


def log_warn(message: str, fields: Optional[Dict[str, Any]] = None) -> None:
    _emit(_logging.WARNING, message, fields)


def log_error(message: str, fields: Optional[Dict[str, Any]] = None) -> None:
    _emit(_logging.ERROR, message, fields)
