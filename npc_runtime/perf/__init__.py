"""Load tools for the sidecar: `bench perf` (capacity ramp, batching speedup) and `soak`.

Both drive a sidecar started in its own process on 127.0.0.1 (`sidecar.Sidecar`) through real
gRPC clients (`client.run_stream`) playing espeak-ng speech at real-time pace
(`workload`); see docs/scaling.md.
"""
