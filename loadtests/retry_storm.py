"""Locust drill `retry-storm`: A brief error burst, then the devices retry in a tight loop: an anomalous 5x spike that
must not blow up replicas (the errors came first; in an overload the demand does).

Run: `locust -f loadtests/retry_storm.py --headless --host http://127.0.0.1:PORT` (or `careplane drill retry-storm`).
"""

from shapes import ScenarioShape
from users import BillingBatchUser, FhirApiUser, LabOrdersUser, TelehealthUser, VitalsIngestionUser

__all__ = ["BillingBatchUser", "FhirApiUser", "LabOrdersUser", "RetryStorm", "TelehealthUser", "VitalsIngestionUser"]


class RetryStorm(ScenarioShape):
    scenario_name = "retry-storm"
