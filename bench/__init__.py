"""Benchmarks of kubelite, run by hand or by CI (`python -m bench.api --quick`).

They print figures; they are not timed tests and assert nothing about speed.
"""
