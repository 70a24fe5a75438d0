"""The second stage: an XGBoost learning-to-rank model over the union of candidates."""
