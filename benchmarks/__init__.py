"""Benchmarks that back the course's claims; each writes JSON to benchmarks/results/.

Run them all with ``make bench`` (``python -m benchmarks.run_all``), or one at a time with
``python -m benchmarks.<name> [--budget tiny|full] [--out DIR]``; ``python -m
benchmarks.render`` rewrites the README's results table from the JSON files, each benchmark
module rendering its own (``rows``, ``conditions``); ``python -m benchmarks.migrate`` brings
JSON files written by older scripts to the current format.
"""
