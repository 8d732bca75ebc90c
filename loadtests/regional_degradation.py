"""Locust drill `regional-degradation`: The secondary region starts failing half its requests; routing must shift away and come back.

Run: `locust -f loadtests/regional_degradation.py --headless --host http://127.0.0.1:PORT` (or `careplane drill regional-degradation`).
"""

from shapes import ScenarioShape
from users import BillingBatchUser, FhirApiUser, LabOrdersUser, TelehealthUser, VitalsIngestionUser

__all__ = ["BillingBatchUser", "FhirApiUser", "LabOrdersUser", "RegionalDegradation", "TelehealthUser", "VitalsIngestionUser"]


class RegionalDegradation(ScenarioShape):
    scenario_name = "regional-degradation"
