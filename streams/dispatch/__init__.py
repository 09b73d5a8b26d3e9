"""The dispatcher: routed payments through their channels' adapters, results as events."""
