"""Files at the trust boundary, read and written safely.

In: paths to files someone else may have written (budgets, cases, cassettes, reports, count
caches). Out: their text, refused unless a regular file under its kind's size limit, and YAML
values that remember the line they came from. Writes go through `atomic`: the whole file or
nothing, several files renamed in together. Nothing here knows what the files mean.
"""
