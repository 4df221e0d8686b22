"""The run's report, built once, and everything rendered from it.

In: the run's evaluation (measure/evaluation.py; report/build.py is the one place a `Report`
is made of it) and a baseline report.json, read as hostile (reader.py) and typed (json_io.py).
Out: the typed `Report` (model.py), report.json (json_io.py), the terminal table, report.md,
report.html, the diff against the baseline, the findings placed on token_budgets.yml's lines,
and the ratchet's tightened token_budgets.yml.
"""
