"""The end of a run: one verdict, then every output rendered from it.

In: a `BudgetRun` holding every call (one pytest run, its xdist workers merged, or CI shards
merged by `tokenbudget merge`), the baseline and the gate's options. Out: report.json, .md and
.html, the job summary, annotations, the terminal summary and whether the run failed. Free of
pytest, so the plugin and the command line conclude the same way.
"""
