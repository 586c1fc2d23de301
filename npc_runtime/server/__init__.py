"""The gRPC sidecar: servicer, Perform sessions, the engine thread, audio and cue tracks.

Layers, outermost first: `app` (builds and runs the grpc.aio server, health, reflection,
shutdown) -> `servicer` (NpcRuntime RPCs; NPC CRUD against the store) -> `perform` (one
Perform stream: admission, reader, paced output) -> `session` (per-stream timeline state) ->
`engine` (the only thread that runs the model). See docs/serving.md for the behaviour.
"""
