"""Synthetic shop data: the raw-log generator, its fault injector and the ground-truth oracle."""
