"""Functional-style handlers."""
from tasker_core.step_handler.functional import (BatchConfig, Decision, batch_analyzer, decision_handler, depends_on,
                                                 inputs, step_handler)


@step_handler("order_handlers.price_order")
@depends_on(packing="summarize_packing")
@inputs("items")
def price_order(packing, items, context):
    subtotal = sum(it["price"] * it["quantity"] for it in items)
    tax = round(subtotal * context.get_config("tax_rate"), 2)
    return {"subtotal": subtotal, "tax": tax, "total": subtotal + tax, "item_count": packing["total_processed"]}


@decision_handler("order_handlers.route_shipping")
@depends_on(priced="price_order")
def route_shipping(priced):
    if priced["total"] >= 100:
        return Decision.route(["express_shipping"], total=priced["total"])
    return Decision.route(["standard_shipping"], total=priced["total"])


@step_handler("order_handlers.ship")
@depends_on(route="route_shipping")
def ship(route, context):
    return {"carrier": context.get_config("carrier"), "total": route["routing_context"]["total"]}


@batch_analyzer("order_handlers.plan_packing", worker_template="pack_items")
@inputs("items")
def plan_packing(items, context):
    return BatchConfig(total_items=len(items), batch_size=context.get_config("batch_size") or 2)
