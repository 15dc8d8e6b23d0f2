"""Tools apart from the product: benchmarks, the soak test, the device check, evaluation.

They drive the product from outside; no product module imports them.
"""
