// The handlers of templates/order.yaml, in both styles of the SDK.

import {
  type StepContext,
  PermanentError,
  RetryableError,
  StepHandler,
  StepHandlerResult,
  stepHandler,
} from "../../../sdk/typescript/dist/index.js";

interface Item {
  sku: string;
  price: number;
  qty: number;
}

/** Class style: checks the order and computes its total. */
export class ValidateOrder extends StepHandler {
  static override handlerName = "ts_orders.validate";

  call(ctx: StepContext) {
    const items = ctx.getInput<Item[]>("items") ?? [];
    if (items.length === 0) {
      throw new PermanentError("the order has no items: give {\"items\": [{\"sku\", \"price\", \"qty\"}]}", { errorType: "validation_error" });
    }
    const max = ctx.getConfig<number>("max_items") ?? 50;
    if (items.length > max) {
      return this.failure(`the order has ${items.length} items, at most ${max}`, { errorType: "validation_error", retryable: false });
    }
    const total = items.reduce((sum, i) => sum + i.price * i.qty, 0);
    return this.success({ total, item_count: items.length });
  }
}

/** Functional style, a decision: which approval step to create. */
export const route = stepHandler("ts_orders.route", (ctx) => {
  const total = ctx.getDependencyField<number>("validate_order", "total") ?? 0;
  const threshold = ctx.getConfig<number>("review_threshold") ?? 100;
  return StepHandlerResult.decision([total >= threshold ? "manual_review" : "auto_approve"], { total, threshold });
});

export const autoApprove = stepHandler("ts_orders.auto_approve", (ctx) => ({
  approved: true,
  by: "auto",
  total: ctx.getDependencyField<number>("route_order", "routing_context", "total") ?? null,
}));

/** Fails retryably on its first attempt (the reviewer is "busy"), then approves. */
export const manualReview = stepHandler("ts_orders.manual_review", (ctx) => {
  if (!ctx.isRetry()) throw new RetryableError("the reviewer is busy", { retryAfter: 0.2 });
  return { approved: true, by: "reviewer", attempt: ctx.retryCount + 1 };
});

export const ship = stepHandler("ts_orders.ship", (ctx) => {
  const approval = ctx.getDependencyResult<{ approved: boolean; by: string }>("auto_approve") ?? ctx.getDependencyResult<{ approved: boolean; by: string }>("manual_review");
  if (!approval?.approved) throw new PermanentError("the order was not approved");
  return { shipped: true, approved_by: approval.by, tracking: `TRK-${ctx.taskUuid.slice(-8)}` };
});
