"""Offline evaluation: ranking and beyond-accuracy metrics with bootstrap CIs, and reports.

:mod:`shoprank.evaluation.metrics` computes per-user metrics from top-K recommendation
matrices and graded relevance, plus bootstrap confidence intervals;
:mod:`shoprank.evaluation.report` stores results per approach and segment and writes JSON,
markdown tables and bar charts; :mod:`shoprank.evaluation.leave_one_out` is the leave-one-out
full-ranking protocol for sequence data sets.
"""
