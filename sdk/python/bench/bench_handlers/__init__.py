"""The benchmark's no-op handler, tasker-core style."""
from tasker_core import StepHandler


class Noop(StepHandler):
    handler_name = "bench_handlers.Noop"

    def call(self, context):
        return self.success({})
