"""The synthetic performance world: procedural characters, espeak-ng speech with phoneme-aligned
visemes, listening behaviour, emotions, dyadic sessions and dataset shards.

Public API (see docs/world.md):
- `generate_session(seed, duration_s, split, identity_seed, size, render, ...)` -> `Session`
- `ShardReader(path)`, `DatasetReader(root)`, `ShardWriter(path)`, `make_dataset(root, spec)`
- `render_frames(identity, perf, size)`, `sample_identity(seed)`, `speak(text, voice)`
- seed ranges `TRAIN_IDENTITY_SEEDS`, `EVAL_IDENTITY_SEEDS`
"""

from npc_runtime.world.dataset import (DatasetReader, DatasetSpec, ShardReader, ShardWriter,
                                       make_dataset)
from npc_runtime.world.identity import (EVAL_IDENTITY_SEEDS, IDENTITY_FEATURES,
                                        TRAIN_IDENTITY_SEEDS, Identity, identity_vector,
                                        sample_identity)
from npc_runtime.world.performance import NUM_PERF, PERF_PARAMS
from npc_runtime.world.render import render_frames
from npc_runtime.world.session import (FPS, SAMPLES_PER_FRAME, Session, generate_session,
                                       render_references)
from npc_runtime.world.speech import SAMPLE_RATE, Voice, speak

__all__ = [
    "DatasetReader", "DatasetSpec", "ShardReader", "ShardWriter", "make_dataset",
    "EVAL_IDENTITY_SEEDS", "IDENTITY_FEATURES", "TRAIN_IDENTITY_SEEDS", "Identity",
    "identity_vector", "sample_identity", "NUM_PERF", "PERF_PARAMS", "render_frames", "FPS",
    "SAMPLES_PER_FRAME", "Session", "generate_session", "render_references", "SAMPLE_RATE",
    "Voice", "speak",
]
