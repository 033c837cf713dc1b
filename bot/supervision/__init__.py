"""The supervisor console: calls found and replayed with the text following the voice,
identifiers masked (unmasked for admins only, with a reason, audited), the 24/7
indicators as server-rendered charts, and /metrics for Prometheus."""
