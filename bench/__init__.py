"""Benchmarks of the platform, run by hand or by `make bench`, never as timed tests."""
