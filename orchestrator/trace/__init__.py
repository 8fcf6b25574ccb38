"""`airlock trace`: a run's timeline for trace viewers (Perfetto, OpenTelemetry)."""

from orchestrator.trace.chrome import chrome_trace
from orchestrator.trace.otlp import otlp_trace
from orchestrator.trace.timeline import Delivery, Kind, Slice, Timeline, load_timeline

__all__ = [
    "Delivery",
    "Kind",
    "Slice",
    "Timeline",
    "chrome_trace",
    "load_timeline",
    "otlp_trace",
]
