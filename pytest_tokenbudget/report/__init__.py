"""The run's report, built once, and everything rendered from it.

In: the evaluated endpoints of a run (and a baseline report.json, read as hostile). Out: the
typed `Report`, report.json, the terminal table, report.md, report.html, the diff against the
baseline, and the ratchet's tightened token_budgets.yml.
"""
