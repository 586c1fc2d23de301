"""The latent reader (`npc-runtime train reader`) and the Online stage's reader term
(`online.perf_weight`): what it learns, where its gradient goes, when it joins the loss."""

import dataclasses
import json

import pytest
import torch

from npc_runtime.model.lpm import LPM
from npc_runtime.train import stage_class
from npc_runtime.train.auxiliary import READ_PARAMS, LatentReader, read_targets
from npc_runtime.train.distributed import Dist
from npc_runtime.train.flow import encode_latents
from npc_runtime.train.loop import _make_run, train
from npc_runtime.train.online import OnlineStage
from npc_runtime.train.reader import (META, ReaderTrainConfig, fit_reader, load_reader,
                                      save_reader, train_reader)
from npc_runtime.world.performance import NUM_PERF, P

from .conftest import smoke_config


def _online(**online):
    cfg = smoke_config("online", steps=3)
    return cfg.replace(online=dataclasses.replace(cfg.online, ode_steps=3, **online))


def test_read_targets_are_the_determined_parameters_only():
    perf = torch.arange(NUM_PERF, dtype=torch.float32).expand(2, 3, NUM_PERF)
    got = read_targets(perf)
    assert got.shape == (2, 3, len(READ_PARAMS))
    assert got[0, 0].tolist() == [float(P[n]) for n in READ_PARAMS]
    assert "blink" not in READ_PARAMS and "head_pitch" not in READ_PARAMS  # stochastic events


def test_reader_fits_what_the_latents_carry():
    # Latents whose parameters are a fixed function of one position's channels, the way the
    # mouth is a few latent positions: a reader that only read the mean would score 1.
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(1600, 4, 8, 8, generator=gen)
    w = torch.randn(4, len(READ_PARAMS), generator=gen)
    y = torch.tanh(z[:, :, 5, 3] @ w)
    cfg = ReaderTrainConfig(epochs=20, batch=32, width=16, lr=3e-3, noise=0.0)
    reader = fit_reader(z[:1536], y[:1536], cfg, progress=False)
    with torch.no_grad():
        assert float(reader.error(z[1536:], y[1536:])) < 0.4


def test_train_reader_reports_every_parameter_on_eval_identities():
    mc = smoke_config("online").model_config()
    torch.manual_seed(0)
    cfg = ReaderTrainConfig(train_frames=32, test_frames=8, epochs=1, batch=16, width=8)
    reader, report = train_reader(LPM(mc).vae, mc.frame_size, cfg, progress=False)
    assert set(report["r2_heldout"]) == set(READ_PARAMS)
    assert report["train_config"]["train_frames"] == 32
    assert not reader.training


def test_save_and_load_round_trip(tmp_path, micro_reader):
    reader, meta = load_reader(micro_reader)
    z = torch.randn(3, reader.channels, 16, 16)
    save_reader(reader, tmp_path / "again", {"r2_heldout": meta["r2_heldout"]})
    again, _ = load_reader(tmp_path / "again")
    with torch.no_grad():
        assert torch.equal(reader(z), again(z))
    with pytest.raises(FileNotFoundError, match="not a latent reader"):
        load_reader(tmp_path / "nothing")
    meta["params"] = ["jaw_open"]
    (tmp_path / "again" / META).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="reads"):
        load_reader(tmp_path / "again")


def test_read_loss_trains_the_latents_not_the_reader(tmp_path, micro_reader):
    stage = OnlineStage(_make_run(_online(perf_weight=1.0, reader_checkpoint=str(micro_reader)),
                                  tmp_path, Dist.from_env("cpu")))
    clip = stage.run.sampler.clips(0, 0, 2, stage.run.cfg.online.clip_chunks, 2)
    with torch.no_grad():
        x0 = encode_latents(stage.student.vae, clip.frames)
    x0 = x0.clone().requires_grad_(True)
    stage.read_loss(x0, clip).backward()
    assert x0.grad is not None and float(x0.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in stage.reader.parameters())
    assert "reader" not in stage.modules and "reader" not in stage.optimizers   # frozen


def test_the_student_term_joins_at_perf_start(tmp_path, micro_reader):
    cfg = _online(perf_weight=1.0, perf_start=1, reader_checkpoint=str(micro_reader))
    train(cfg, tmp_path / "run", stage_class("online"), progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    by_step = {x["step"]: x for x in lines if "loss_ode" in x}
    assert sorted(by_step) == [1, 2, 3]           # logged after steps 0, 1, 2
    assert "loss_read" not in by_step[1] and by_step[2]["loss_read"] > 0
    evals = [x for x in lines if "eval_read_mse_truth" in x]
    assert evals and all(x["eval_read_mse_student"] > 0 for x in evals)


def test_reader_options_are_checked(micro_reader):
    with pytest.raises(ValueError, match="must be >= 0"):
        _online(perf_weight=-1.0)
    with pytest.raises(ValueError, match="go together"):
        _online(perf_weight=1.0)
    with pytest.raises(ValueError, match="go together"):
        _online(reader_checkpoint=str(micro_reader))
    with pytest.raises(ValueError, match="perf_start"):
        _online(perf_weight=1.0, perf_start=-1, reader_checkpoint=str(micro_reader))


def test_a_reader_of_other_latents_is_refused(tmp_path, micro_reader):
    reader, meta = load_reader(micro_reader)
    other = LatentReader(reader.channels + 1, reader.width)
    save_reader(other, tmp_path / "other", {"r2_heldout": meta["r2_heldout"]})
    with pytest.raises(ValueError, match="channel"):
        OnlineStage(_make_run(_online(perf_weight=1.0, reader_checkpoint=str(tmp_path / "other")),
                              tmp_path / "run", Dist.from_env("cpu")))


def test_a_reader_that_reads_nothing_is_refused(tmp_path, micro_reader):
    reader, meta = load_reader(micro_reader)
    save_reader(reader, tmp_path / "blind", {"r2_heldout": {k: -0.1 for k in meta["r2_heldout"]}})
    with pytest.raises(ValueError, match="reads nothing"):
        OnlineStage(_make_run(_online(perf_weight=1.0, reader_checkpoint=str(tmp_path / "blind")),
                              tmp_path / "run", Dist.from_env("cpu")))


def test_parameters_weigh_by_what_the_reader_reads():
    reader = LatentReader(4, 8)
    z, y = torch.randn(6, 4, 8, 8), torch.randn(6, len(READ_PARAMS))
    w = torch.zeros(len(READ_PARAMS))
    w[0] = len(READ_PARAMS)                      # jaw_open only, mean weight 1
    with torch.no_grad():
        want = (((reader(z) - y) / reader.std) ** 2)[:, 0].mean()
        assert torch.allclose(reader.error(z, y, w), want)


def test_reader_shape():
    out = LatentReader(4)(torch.randn(5, 4, 32, 32))
    assert out.shape == (5, len(READ_PARAMS))


def test_the_command_trains_a_reader_on_a_checkpoints_vae(tmp_path, chain):
    from npc_runtime.cli import main

    vae_run = chain["vae"][1]
    out = tmp_path / "reader"
    assert main(["train", "reader", "--vae", str(vae_run / "export"), "--out", str(out),
                 "--frames", "32", "--test-frames", "8", "--epochs", "1", "--no-progress"]) == 0
    reader, meta = load_reader(out)
    assert meta["vae_checkpoint"] == str(vae_run / "export")
    assert meta["train_config"]["train_frames"] == 32 and set(meta["r2_heldout"]) == set(READ_PARAMS)
    from npc_runtime.checkpoint import save_checkpoint

    mc = smoke_config("online").model_config()
    save_checkpoint(tmp_path / "random", LPM(mc), mc, trained=False, info={"vae": "untrained"})
    with pytest.raises(SystemExit, match="not trained"):     # a random VAE's latents: refused
        main(["train", "reader", "--vae", str(tmp_path / "random"), "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
