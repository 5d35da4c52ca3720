"""Handlers of the order_fulfillment template, written for tasker-core's
Python worker API: they import tasker_core and run unchanged under Tasker's
worker (python3 -m tasker_worker ... --handlers examples/python/order_handlers)."""
from .fulfillment import FinalizeOrderHandler, PackItemsHandler, SummarizePackingHandler, ValidateOrderHandler
from .functional import plan_packing, price_order, route_shipping, ship

__all__ = ["ValidateOrderHandler", "PackItemsHandler", "SummarizePackingHandler", "FinalizeOrderHandler", "price_order", "route_shipping",
           "ship", "plan_packing"]
