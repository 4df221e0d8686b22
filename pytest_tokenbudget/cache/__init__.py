"""The prompt cache: what it would bill, and what breaks it.

In: requests as they are sent now and the usage recorded for them. Out: the reads and writes
the API would bill for those requests (simulation), the findings of the cache doctor (what
changes between calls, and where), and predicted hit rates per endpoint.
"""
