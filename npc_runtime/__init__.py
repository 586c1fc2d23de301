"""npc_runtime: live video faces for game NPCs, served by a streaming Online LPM over gRPC."""

__version__ = "0.1.0"
