"""A toy protocol, as the template for a new one (docs/architecture.md,
"Adding a protocol"), run by tests/test_adding_a_protocol.py.

`tally`: each data contributor sends the count it holds to the collector (a
model creator), which adds them up once every count is in and keeps the
total in its own store. `announce`, a second protocol in a later stage,
reads that kept total and tells the end user. Files, in the order one
writes them: rules.py (steps, labels), roles.py (what each role does, with
its typed state and holdings), adversaries.py (misbehaviours, apart from
the honest code), tally.py / announce.py (each assembles its Protocol).
"""
