"""Feature views: one per dbt model tagged `feast`, schema from the model's yml."""

from _definitions import DEFINITIONS

user_features = DEFINITIONS.feature_views["user_features"]
product_features = DEFINITIONS.feature_views["product_features"]
user_category_affinity = DEFINITIONS.feature_views["user_category_affinity"]
user_brand_affinity = DEFINITIONS.feature_views["user_brand_affinity"]
calendar_features = DEFINITIONS.feature_views["calendar_features"]
session_features = DEFINITIONS.feature_views["session_features"]
