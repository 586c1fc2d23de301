"""The streaming-equivalence tests of the architecture (tests/model/test_streaming.py) with the
Triton kernels switched in: NPC_RUNTIME_KERNELS=triton routes every paged attention and KV append
of the stream through npc_runtime.kernels (the interpreter on CPU), while the whole-sequence
side stays on dense PyTorch attention - so kernel stream == reference model, end to end.

The reference paths are booby-trapped, so a test cannot pass by silently running them. The
model tests' own tolerances (2e-4 stream vs whole sequence, 1e-5 batched vs solo) apply
unchanged: the interpreter's fp32 kernels sit well inside them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from npc_runtime.kernels import dispatch
from npc_runtime.model import attention
from npc_runtime.pipeline import PerformanceModel
from tests.model import test_streaming as streaming
from tests.model.conftest import _randomize_zero_inits, micro_config

from .tolerances import INTERPRETED

# The micro model runs on CPU; compiled kernels need CUDA tensors (covered by the kernel tests).
pytestmark = pytest.mark.skipif(not INTERPRETED, reason="needs the Triton interpreter (CPU)")


@pytest.fixture
def kernels_on(monkeypatch):
    def trap(*_args, **_kwargs):
        raise AssertionError("a PyTorch reference ran although the kernels were switched in")

    monkeypatch.setenv(dispatch.ENV_VAR, "triton")
    monkeypatch.setattr(attention, "paged_attention_reference", trap)
    monkeypatch.setattr(attention, "write_pages", trap)


@pytest.fixture
def micro_model() -> PerformanceModel:
    model = PerformanceModel.from_config(micro_config(), seed=0)
    _randomize_zero_inits(model)
    return model


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_stream_equals_whole_sequence(kernels_on, micro_model, rng):
    streaming.test_stream_equals_whole_sequence_with_block_causal_mask(micro_model, rng)


def test_teacher_forcing_one_pass_equals_stream(kernels_on, rng):
    streaming.test_teacher_forcing_one_pass_equals_stream(rng)


def test_batched_ragged_sessions_match_solo(kernels_on, micro_model, rng):
    streaming.test_batched_sessions_match_solo_and_identities_do_not_leak(micro_model, rng)


def test_kernels_really_ran(kernels_on, micro_model, rng, monkeypatch):
    """The switch reaches the kernels: count their launches through one chunk step."""
    from npc_runtime.kernels import kv_append, paged_attention
    calls = {"attention": 0, "append": 0}

    def counting(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(paged_attention, "paged_attention",
                        counting("attention", paged_attention.paged_attention))
    monkeypatch.setattr(kv_append, "kv_append", counting("append", kv_append.kv_append))
    refs, speak, listen, emotion = streaming._inputs(micro_model, rng, 1)
    latents = streaming._stream(micro_model, refs, speak, listen, emotion, 1)
    cfg = micro_model.cfg
    depth, steps = cfg.dit.depth, cfg.stream.online_steps
    # every block attends at every sampling step, and in the commit pass all but the last
    # (which only hands its K/V over); every block appends K and V once in the commit pass.
    assert calls == {"attention": depth * steps + depth - 1, "append": 2 * depth}
    assert torch.isfinite(latents).all()
