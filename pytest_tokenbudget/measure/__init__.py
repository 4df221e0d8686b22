"""From calls to verdicts.

In: calls with their usage, attributed to endpoint, case and test, merged across xdist
workers. Out: per-endpoint statistics (percentiles, rates, costs), budget verdicts, every
case accounted for, repriced traffic, and the metric facts (name, unit, direction).
"""
