"""Public benchmark data sets converted to shoprank's raw contract (see docs/datasets.md)."""
