"""From calls to verdicts.

In: calls with their usage, attributed to endpoint, case and test, collected in the run's
state (run.py) and merged across xdist workers. Out: the run's evaluation (evaluation.py):
per endpoint, statistics (percentiles, rates, costs), budget verdicts, every case accounted
for, cache figures and repriced traffic; and the metric facts (name, unit, direction).
"""
