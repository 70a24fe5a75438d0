"""Builds the Feast objects once from dbt's manifest (see shoprank.features.definitions)."""

from shoprank.features.definitions import build_definitions
from shoprank.settings import load_settings

DEFINITIONS = build_definitions(load_settings())
