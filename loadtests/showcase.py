"""Locust drill `showcase`: The demo: every workload at its baseline, a regional degradation of the FHIR API's secondary region, then the daily vaccination-clinic spike, then a device storm.

Run: `locust -f loadtests/showcase.py --headless --host http://127.0.0.1:PORT` (or `careplane drill showcase`).
"""

from shapes import ScenarioShape
from users import BillingBatchUser, FhirApiUser, LabOrdersUser, TelehealthUser, VitalsIngestionUser

__all__ = ["BillingBatchUser", "FhirApiUser", "LabOrdersUser", "Showcase", "TelehealthUser", "VitalsIngestionUser"]


class Showcase(ScenarioShape):
    scenario_name = "showcase"
