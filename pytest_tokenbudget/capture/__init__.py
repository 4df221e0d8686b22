"""Traffic in: record, replay or count every API call a test makes.

In: the HTTP requests of a test, through the SDKs' transports. Out: exchanges recorded to one
cassette per endpoint and case (scrubbed), replayed from it by request key without vcrpy,
or counted with `count_tokens`; and, when a recording no longer matches, why and the fix.
"""
