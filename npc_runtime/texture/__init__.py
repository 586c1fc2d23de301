"""Frame texture codec of the sidecar: RGB frames -> BC1 (DXT1) or raw RGBA8 payloads.

Public API (what the server calls per batch of frames):
- ``TextureFormat``: ``BC1`` / ``RGBA8``;
- ``encode(frames, fmt) -> list[bytes]``: (N, H, W, 3) or (H, W, 3) uint8, numpy or torch;
- ``payload_size(fmt, width, height) -> int``;
- ``decode(payload, fmt, width, height) -> np.ndarray``: (H, W, 3) uint8, for round trips.
See docs/texture.md for the formats, the encoder and its measured quality and speed.
"""

from npc_runtime.texture.formats import TextureFormat, decode, encode, payload_size

__all__ = ["TextureFormat", "decode", "encode", "payload_size"]
