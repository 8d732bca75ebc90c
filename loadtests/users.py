"""Locust users, one class per demo workload, each with a realistic request mix.

Every user paces itself (Poisson arrivals, thinned to the curve: see
``scenarios.thinned_arrival``) so that its class together offers the active
scenario's demand curve for its workload: a class of N users aims at
``rate(t) / units_per_request / N`` requests per second each. That is an
open-loop arrival process as long as each user is free when its next arrival
comes (the pools are sized so that holds up to the route timeout, see
``shapes.ScenarioShape.concurrency_seconds``), and it lets one Locust process
drive several workloads with different curves, which a plain user-count
LoadTestShape cannot.

Hosts: ``--host`` sets every class's host (Locust's rule). In the sandbox each
workload has its own port, so ``CAREPLANE_HOSTS`` (JSON ``{workload: url}``)
overrides the host per workload class. ``CAREPLANE_REQUEST_WEIGHT`` is how
many demand units one request to a sampled service stands for (the sandbox's
weight, 10; 1 against a real service).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from typing import Any, ClassVar

import scenarios
import shapes
from locust import between, task  # noqa: F401  (between kept for people adapting these classes)
from locust.contrib.fasthttp import FastHttpUser

HOSTS: dict[str, str] = json.loads(os.environ.get("CAREPLANE_HOSTS", "{}") or "{}")
REQUEST_WEIGHT = float(os.environ.get("CAREPLANE_REQUEST_WEIGHT", "1"))
CATCH_UP_SECONDS = 20.0
_RNG = random.Random()  # the arrival process's draws (one per Locust process)
LOINC = ("8867-4", "8480-6", "8462-4", "59408-5", "8310-5", "9279-1")  # heart rate, BP, SpO2, temperature, resp. rate


def _patient_id() -> str:
    return str(random.randint(1000, 99999))


class PacedUser(FastHttpUser):
    """Paces requests to the scenario's demand curve for ``workload``."""

    abstract = True
    workload: ClassVar[str] = ""
    batch_mean: ClassVar[float] = 0.0  # mean units per request for batch services; 0 = sampled (REQUEST_WEIGHT)
    network_timeout = 15.0
    connection_timeout = 5.0

    def __init__(self, environment: Any) -> None:
        own = HOSTS.get(self.workload)
        if own:
            self.host = own  # instance attribute: wins over the class host that --host sets
        super().__init__(environment)
        self._next = time.time()

    def on_start(self) -> None:
        # Start at a random point of the pacing cycle: a pool spawned at once must not fire one burst.
        import gevent

        gevent.sleep(self.wait_time())

    @classmethod
    def units_per_request(cls) -> float:
        return cls.batch_mean or REQUEST_WEIGHT

    def wait_time(self) -> float:
        users = max(1, shapes.pool_size(type(self)))
        per_request = self.units_per_request() * users  # units/s of the curve -> this user's requests/s
        peak = shapes.peak_rate(self.workload) / per_request
        now = time.time()
        if peak <= 0:
            self._next = now + 1.0
            return 1.0
        # A user that fell behind (a late wake-up on a busy machine, a slow response) catches up on the
        # arrivals it owes, up to CATCH_UP_SECONDS: the offered rate must not sag with the generator's
        # CPU. With 1 s, late wake-ups on two loaded cores cost 10-15 % of the demand (measured).
        after = max(self._next, now - CATCH_UP_SECONDS)
        self._next = scenarios.thinned_arrival(
            after, lambda t: shapes.rate_at(self.workload, t) / per_request, peak * 1.001, _RNG)
        return max(0.0, self._next - now)


class FhirApiUser(PacedUser):
    """Clinician apps and the patient portal: mostly reads and searches, some writes."""

    workload = "fhir-api"

    @task(60)
    def read_patient(self) -> None:
        self.client.get(f"/Patient/{_patient_id()}", name="/Patient/{id}")

    @task(15)
    def search_patient(self) -> None:
        self.client.get(f"/Patient?family={random.choice(['Smith', 'Nguyen', 'Garcia', 'Okafor'])}&_count=20",
                        name="/Patient?family")

    @task(15)
    def search_observations(self) -> None:
        self.client.get(f"/Observation?patient={_patient_id()}&code={random.choice(LOINC)}&_sort=-date",
                        name="/Observation?patient")

    @task(7)
    def write_observation(self) -> None:
        obs = {"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{_patient_id()}"},
               "code": {"coding": [{"system": "http://loinc.org", "code": random.choice(LOINC)}]},
               "valueQuantity": {"value": round(random.uniform(50, 120), 1), "unit": "/min"},
               "note": [{"text": "x" * random.randint(200, 1200)}]}
        self.client.post("/Observation", json=obs, name="/Observation")

    @task(3)
    def write_patient(self) -> None:
        pat = {"resourceType": "Patient", "name": [{"family": "Doe", "given": ["Jan"]}], "birthDate": "1980-02-29",
               "address": [{"line": ["1 Main St"], "city": "Springfield"}], "text": {"div": "x" * 2500}}
        self.client.post("/Patient", json=pat, name="/Patient")


class LabOrdersUser(PacedUser):
    """Order entry from the EHR and results polling by clinicians."""

    workload = "lab-orders"

    @task(40)
    def read_result(self) -> None:
        self.client.get(f"/DiagnosticReport/{random.randint(1, 10**6)}", name="/DiagnosticReport/{id}")

    @task(25)
    def list_orders(self) -> None:
        self.client.get(f"/ServiceRequest?patient={_patient_id()}&status=active", name="/ServiceRequest?patient")

    @task(35)
    def place_order(self) -> None:
        order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                 "code": {"coding": [{"system": "http://loinc.org", "code": random.choice(["2345-7", "718-7", "2160-0"])}]},
                 "subject": {"reference": f"Patient/{_patient_id()}"}, "note": [{"text": "x" * random.randint(300, 2000)}]}
        self.client.post("/ServiceRequest", json=order, name="/ServiceRequest")


class TelehealthUser(PacedUser):
    """Session broker: patients join, clients heartbeat, sessions end."""

    workload = "telehealth"

    def on_start(self) -> None:
        self.session = uuid.uuid4().hex[:12] + "1"
        super().on_start()

    @task(20)
    def create_session(self) -> None:
        self.client.post("/sessions", json={"patient": _patient_id(), "clinician": _patient_id(),
                                            "media": random.choice(["video", "audio"])}, name="/sessions")

    @task(60)
    def heartbeat(self) -> None:
        self.client.post(f"/sessions/{self.session}/heartbeat", json={"rttMs": random.randint(20, 200)},
                         name="/sessions/{id}/heartbeat")

    @task(15)
    def poll(self) -> None:
        self.client.get(f"/sessions/{self.session}", name="/sessions/{id}")

    @task(5)
    def end(self) -> None:
        self.client.delete(f"/sessions/{self.session}", name="/sessions/{id}")


class VitalsIngestionUser(PacedUser):
    """A bedside-device gateway posting batches of vitals messages."""

    workload = "vitals-ingestion"
    batch_mean = scenarios.BATCH_UNITS["vitals-ingestion"]

    @task
    def post_batch(self) -> None:
        n = scenarios.batch_size(self.workload, random.randint)
        device = f"monitor-{random.randint(1, 400)}"
        msgs = [{"device": device, "code": random.choice(LOINC), "value": round(random.uniform(30, 180), 1),
                 "ts": time.time() - i} for i in range(n)]
        self.client.post("/vitals", json={"gateway": "ward-7", "messages": msgs}, name="/vitals")


class BillingBatchUser(PacedUser):
    """The claims scrubber submitting claim batches to adjudication."""

    workload = "billing-batch"
    batch_mean = scenarios.BATCH_UNITS["billing-batch"]
    network_timeout = 70.0  # batch submissions take seconds; the sandbox's route timeout is 60 s

    @task
    def submit(self) -> None:
        n = scenarios.batch_size(self.workload, random.randint)
        claims = [{"claimId": uuid.uuid4().hex, "cpt": random.choice(["99213", "99214", "93000"]),
                   "amount": round(random.uniform(40, 900), 2), "payer": "acme", "detail": "x" * 600} for _ in range(n)]
        self.client.post("/claims/batch", json={"claims": claims}, name="/claims/batch")
