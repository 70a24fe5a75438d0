"""Feature services, one per model version; training and serving ask for these by name."""

from _definitions import DEFINITIONS

ranker_v1 = DEFINITIONS.feature_services["ranker_v1"]
