"""careplane: forecast-driven autoscaling and resilience for healthcare middleware on Kubernetes."""

__version__ = "0.1.0"
