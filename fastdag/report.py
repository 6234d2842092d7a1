"""Figures from metrics (filled in by the metrics issue)."""

from __future__ import annotations

import argparse


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    pass


def add_plot_bench_parser(sub: argparse._SubParsersAction) -> None:
    pass
