"""Locust drill `vaccination-campaign`: A vaccination clinic opens booking at a known time every day: a 9x step on the FHIR API.

Run: `locust -f loadtests/vaccination_campaign.py --headless --host http://127.0.0.1:PORT` (or `careplane drill vaccination-campaign`).
"""

from shapes import ScenarioShape
from users import BillingBatchUser, FhirApiUser, LabOrdersUser, TelehealthUser, VitalsIngestionUser

__all__ = ["BillingBatchUser", "FhirApiUser", "LabOrdersUser", "TelehealthUser", "VaccinationCampaign", "VitalsIngestionUser"]


class VaccinationCampaign(ScenarioShape):
    scenario_name = "vaccination-campaign"
