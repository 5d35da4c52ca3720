"""Worker-bootstrap exceptions (tasker-core's ``tasker_core.exceptions``).

Quirk kept: ``tasker_core.TaskerError`` and ``tasker_core.FFIError`` are these
plain Exception subclasses, not ``tasker_core.errors.TaskerError``/``FFIError``.
"""


class TaskerError(Exception):
    pass


class FFIError(TaskerError):
    pass


class ConversionError(TaskerError):
    pass


class WorkerNotInitializedError(TaskerError):
    pass


class WorkerBootstrapError(TaskerError):
    pass


class WorkerAlreadyRunningError(TaskerError):
    pass
