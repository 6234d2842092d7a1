"""Predictions from history: what a graph would take, learnt from earlier runs' metrics.

    saved metrics (Parquet, Redis, RunReports) ──history.fit──> CostModel
    graph ──core.plan──> Plan ──forecast.simulate(model, workers)──> Forecast
    Forecast ──text.describe──> ``fastdag plan`` / ``fd.plan_report``

Above the metrics layer (it reads reports) and the core (it plans graphs
the way the local executor does); nothing below imports it.
"""
