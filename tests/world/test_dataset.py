"""Dataset shards: what is written is what is read, and `world make` builds a dataset."""

import json

import numpy as np
import pytest
import torch

from npc_runtime.cli import main
from npc_runtime.world.dataset import (DatasetReader, DatasetSpec, ShardReader, ShardWriter,
                                       make_dataset)
from npc_runtime.world.session import generate_session

torch.set_num_threads(1)


def test_shard_round_trip(tmp_path):
    sessions = [generate_session(s, 2.0, size=64, n_references=2) for s in (1, 2)]
    with ShardWriter(tmp_path / "shard-00000.npz") as w:
        for s in sessions:
            w.add(s)
    reader = ShardReader(tmp_path / "shard-00000.npz")
    assert len(reader) == 2
    for want, got in zip(sessions, reader):
        for name in ("frames", "speak_audio", "listen_audio", "emotion", "perf", "speaking",
                     "listening", "references"):
            assert np.array_equal(getattr(want, name), getattr(got, name)), name
        assert got.identity == want.identity and got.seed == want.seed
        assert got.meta["turns"] == want.meta["turns"]
    assert reader.meta(1)["speak_voice"] == sessions[1].meta["speak_voice"]


def test_unrendered_sessions_are_refused(tmp_path):
    with pytest.raises(ValueError):
        ShardWriter(tmp_path / "x.npz").add(generate_session(0, 1.0, render=False))


def test_make_dataset_and_reader(tmp_path):
    spec = DatasetSpec(sessions=3, duration_s=1.0, sessions_per_shard=2, size=64)
    stats = make_dataset(tmp_path, spec, progress=False)
    assert stats["frames"] == 75 and stats["frames_per_s"] > 0
    data = DatasetReader(tmp_path)
    assert len(data) == 3 and len(data.shards) == 2
    assert [s.seed for s in data] == [0, 1, 2]
    assert np.array_equal(data[2].perf, generate_session(2, 1.0, render=False).perf)
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["spec"]["sessions"] == 3 and len(index["shards"]) == 2


def test_world_make_command(tmp_path):
    out = tmp_path / "ds"
    assert main(["world", "make", str(out), "--sessions", "1", "--duration", "1",
                 "--size", "64"]) == 0
    assert len(DatasetReader(out)) == 1
