"""Streaming inference: bundle loading, the streaming session and its schedulers.

Needs `models`, `features` and `layout` only, never `train`/`data`/`tokens`: a bundle from
`soundflow export` runs with the runtime alone.
"""
from soundflow.runtime.bundle import Bundle, StreamingSettings, export_bundle, load_bundle
from soundflow.runtime.session import SCHEDULERS, Event, StreamingSession, run_stream

__all__ = ["SCHEDULERS", "Bundle", "Event", "StreamingSession", "StreamingSettings", "export_bundle",
           "load_bundle", "run_stream"]
