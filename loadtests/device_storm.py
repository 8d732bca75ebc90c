"""Locust drill `device-storm`: A ward's bedside monitors reconnect together after a network blip and flush their buffers.

Run: `locust -f loadtests/device_storm.py --headless --host http://127.0.0.1:PORT` (or `careplane drill device-storm`).
"""

from shapes import ScenarioShape
from users import BillingBatchUser, FhirApiUser, LabOrdersUser, TelehealthUser, VitalsIngestionUser

__all__ = ["BillingBatchUser", "DeviceStorm", "FhirApiUser", "LabOrdersUser", "TelehealthUser", "VitalsIngestionUser"]


class DeviceStorm(ScenarioShape):
    scenario_name = "device-storm"
