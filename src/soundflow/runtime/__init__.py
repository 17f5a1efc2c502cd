"""Streaming inference: sessions, schedulers and bundle loading. Needs `models` only, never `train`/`data`."""
