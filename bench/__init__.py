"""`make bench`: the chat path under load, beside bare baselines (docs/performance.md).

Nothing in the product imports this package; it starts the product as it is
deployed and measures it from outside.
"""
