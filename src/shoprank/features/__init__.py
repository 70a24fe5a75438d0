"""Feast feature store: definitions from dbt's manifest, apply/materialize, training sets."""
