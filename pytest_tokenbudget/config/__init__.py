"""What the team declared: token_budgets.yml and its cases.

In: the budgets file and cases files (YAML or JSONL). Out: a validated `Config` (defaults,
endpoints, budgets, cases) whose every value knows its file and line, checked against the
shipped JSON Schema. Problems come out as one `ConfigError` naming file, line and key.
"""
