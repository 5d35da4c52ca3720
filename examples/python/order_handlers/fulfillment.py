"""Class-style handlers."""
from tasker_core import StepContext, StepHandler, StepHandlerResult
from tasker_core.batch_processing import Batchable
from tasker_core.errors import PermanentError


class ValidateOrderHandler(StepHandler):
    handler_name = "order_handlers.ValidateOrderHandler"

    def call(self, context: StepContext) -> StepHandlerResult:
        items = context.get_input("items") or []
        limit = context.get_config("max_items") or 100
        if not items:
            return self.failure("the order has no items", error_type="validation_error", retryable=False)
        if len(items) > limit:
            return self.failure(f"{len(items)} items, more than {limit}", error_type="validation_error",
                                retryable=False)
        for it in items:
            if it.get("quantity", 0) <= 0:
                raise PermanentError(f"item {it.get('sku')} has no quantity")
        return self.success({"item_count": len(items), "skus": [it["sku"] for it in items]})


class PackItemsHandler(StepHandler, Batchable):
    """A batch worker: packs its range of items, yielding a checkpoint after each item."""

    handler_name = "order_handlers.PackItemsHandler"

    def call(self, context: StepContext) -> StepHandlerResult:
        no_op = self.handle_no_op_worker(context)
        if no_op is not None:
            return no_op
        batch = self.get_batch_context(context)
        items = context.get_input("items")
        start = batch.checkpoint_cursor if batch.has_checkpoint() else batch.start_cursor
        packed = list(context.accumulated_results or [])
        if start < batch.end_cursor:
            packed.append(items[start]["sku"])
            if start + 1 < batch.end_cursor:
                return self.checkpoint_yield(start + 1, len(packed), packed)
        return self.batch_worker_success(items_processed=len(packed), results=packed, last_cursor=batch.end_cursor)


class SummarizePackingHandler(StepHandler, Batchable):
    """Converges the batch workers: what each packed."""

    handler_name = "order_handlers.SummarizePackingHandler"

    def call(self, context: StepContext) -> StepHandlerResult:
        packs = context.get_all_dependency_results("pack_items_")
        totals = self.aggregate_worker_results(packs)
        packed = sorted(sku for p in packs for sku in (p.get("results") or []))
        return self.success({"packed": packed, "batches": totals["batch_count"],
                             "total_processed": totals["total_processed"]})


class FinalizeOrderHandler(StepHandler):
    """Converges the shipping branch the decision took."""

    handler_name = "order_handlers.FinalizeOrderHandler"

    def call(self, context: StepContext) -> StepHandlerResult:
        shipping = context.get_dependency_result("express_shipping") or context.get_dependency_result(
            "standard_shipping")
        return self.success({"carrier": shipping["carrier"], "total": shipping["total"]})
