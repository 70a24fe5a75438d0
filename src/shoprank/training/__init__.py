"""Training: the candidate generators, the rankers and the saved recommender.

The evaluation, the service and retraining all call this stage: it fits generators at a
moment, builds training examples, fits the XGBoost rankers and saves everything one model
tag needs to serve (:mod:`shoprank.training.bundle`).
"""
