"""Side-by-side benchmarks: each prints its measurements and ends with its ratio.

Run them with ``python run.py bench NAME`` (``python run.py bench --list``). Nothing here is a
timed test: the tests only check that each benchmark runs and reports a ratio.
"""
