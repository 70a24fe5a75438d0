"""Serving: load generation and benchmarks for the BentoML services."""
