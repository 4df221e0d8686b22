"""`python -m pytest_tokenbudget.cli`: the same as the `tokenbudget` console script."""

import sys

from pytest_tokenbudget.cli.program import main

sys.exit(main())
