"""Locust drill `flu-season`: Respiratory season: clinical traffic ramps to ~3x over weeks (here minutes) and recedes.

Run: `locust -f loadtests/flu_season.py --headless --host http://127.0.0.1:PORT` (or `careplane drill flu-season`).
"""

from shapes import ScenarioShape
from users import BillingBatchUser, FhirApiUser, LabOrdersUser, TelehealthUser, VitalsIngestionUser

__all__ = ["BillingBatchUser", "FhirApiUser", "FluSeason", "LabOrdersUser", "TelehealthUser", "VitalsIngestionUser"]


class FluSeason(ScenarioShape):
    scenario_name = "flu-season"
