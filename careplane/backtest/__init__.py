"""``careplane backtest``: replay recorded demand through careplane, the Kubernetes HPA and the oracle.

The evaluation model is DESIGN.md's (see :mod:`careplane.backtest.engine`);
careplane runs through the same :class:`~careplane.decision.models.WorkloadModels`
and :func:`~careplane.decision.decide` as the operator.
"""

from careplane.backtest.engine import Metrics, Run, oracle, score, simulate
from careplane.backtest.runner import CONTROLLERS, BacktestError, Result, backtest, run_controller, write_timeline

__all__ = [
    "CONTROLLERS",
    "BacktestError",
    "Metrics",
    "Result",
    "Run",
    "backtest",
    "oracle",
    "run_controller",
    "score",
    "simulate",
    "write_timeline",
]
