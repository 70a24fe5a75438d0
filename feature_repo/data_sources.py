"""FileSources over the Parquet marts dbt builds, and the push source for live sessions."""

from _definitions import DEFINITIONS

user_features_source = DEFINITIONS.sources["user_features_source"]
product_features_source = DEFINITIONS.sources["product_features_source"]
user_category_affinity_source = DEFINITIONS.sources["user_category_affinity_source"]
user_brand_affinity_source = DEFINITIONS.sources["user_brand_affinity_source"]
calendar_features_source = DEFINITIONS.sources["calendar_features_source"]
session_features_source = DEFINITIONS.sources["session_features_source"]
session_events_push = DEFINITIONS.push_sources["session_events_push"]
