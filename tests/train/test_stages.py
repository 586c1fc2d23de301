"""Smoke runs of the three stages, chained as in the recipe; what each exports is honest."""

import json

import numpy as np
import pytest
import torch

from npc_runtime.checkpoint import read_meta
from npc_runtime.pipeline import PerformanceModel


def test_vae_stage_exports_full_lpm_with_only_the_vae_trained(chain):
    summary, run = chain["vae"]
    cfg, trained, info = read_meta(run / "export")
    assert trained is False
    assert info["vae"] == "trained" and info["dit"].startswith("untrained")
    assert info["audio"].startswith("untrained") and np.isfinite(info["psnr_db"])
    model = PerformanceModel.from_checkpoint(run / "export")     # a full LPM state dict
    assert model.lpm.vae.latent_scale.item() == pytest.approx(info["latent_scale"], rel=1e-4)
    assert model.lpm.vae.latent_scale.item() != 1.0
    for name in ("loss.png", "metrics.jsonl", "summary.json", "train.yaml", "model.yaml"):
        assert (run / name).is_file(), name
    assert list((run / "samples").glob("vae-*.png"))
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    assert any("eval_psnr_db" in x for x in lines)


def test_base_stage_uses_the_trained_vae_and_keeps_it_frozen(chain):
    _, vae_run = chain["vae"]
    _, run = chain["base"]
    cfg, trained, info = read_meta(run / "export")
    assert info["stage"] == "base" and info["causal"] is False and info["vae"] == "trained"
    from safetensors.torch import load_file
    a, b = load_file(str(vae_run / "export/model.safetensors")), \
        load_file(str(run / "export/model.safetensors"))
    for k in a:
        if k.startswith("vae."):
            assert torch.equal(a[k], b[k]), k          # frozen: bit-identical
    changed = [k for k in a if k.startswith("dit.") and not torch.equal(a[k], b[k])]
    assert changed                                      # and the DiT did train
    assert np.isfinite(info["val_loss"])


def test_online_stage_streams_and_reports_both_phases(chain):
    summary, run = chain["online"]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["phase"] for x in lines] == [0.0, 0.0, 1.0, 1.0]
    assert "loss_ode" in lines[0] and "loss_dm" in lines[-1] and "loss_critic" in lines[-1]
    assert all(np.isfinite(v) for x in lines for v in x.values())
    cfg, trained, info = read_meta(run / "export")
    assert trained is True and info["stage"] == "online" and info["sampling_steps"] <= 4
    model = PerformanceModel.from_checkpoint(run / "export")
    refs = np.full((1, cfg.frame_size, cfg.frame_size, 3), 128, np.uint8)
    frames = model.perform(refs, np.zeros(16_000 // 5, np.float32))
    assert frames.shape == (5, cfg.frame_size, cfg.frame_size, 3)


def test_online_stage_continues_an_earlier_student_and_refuses_a_base_as_one(chain, tmp_path):
    import dataclasses

    from safetensors.torch import load_file

    from npc_runtime.train import stage_class
    from npc_runtime.train.loop import train

    from .conftest import smoke_config
    _, base = chain["base"]
    _, online = chain["online"]
    # lr 0: one step changes nothing, so the export is exactly the student it started from.
    cfg = smoke_config("online", steps=1, lr=0.0)
    opts = dataclasses.replace(cfg.online, ode_steps=2, objective="sds",  # no critic lr
                               base_checkpoint=str(base), init_checkpoint=str(online))
    train(cfg.replace(online=opts), tmp_path / "go", stage_class("online"), progress=False)
    donor = load_file(str(online / "export/model.safetensors"))
    teacher = load_file(str(base / "export/model.safetensors"))
    own = load_file(str(tmp_path / "go/export/model.safetensors"))
    assert own.keys() == donor.keys()
    assert all(torch.equal(own[k], donor[k]) for k in donor)        # the earlier student
    assert any(not torch.equal(donor[k], teacher[k]) for k in donor if k.startswith("dit."))
    _, _, info = read_meta(tmp_path / "go/export")
    assert f"continuing {online}" in info["dit"]
    with pytest.raises(ValueError, match="not an Online LPM"):
        train(cfg.replace(online=dataclasses.replace(opts, init_checkpoint=str(base))),
              tmp_path / "no", stage_class("online"), progress=False)


def test_cli_smoke_and_export(tmp_path):
    from npc_runtime.cli import main

    out = tmp_path / "vae"
    assert main(["train", "vae", "--smoke", "--steps", "2", "--out", str(out),
                 "--threads", "1", "--no-progress"]) == 0
    assert (out / "export/model.safetensors").is_file()
    assert main(["train", "export", str(out), "--dest", str(tmp_path / "again")]) == 0
    _, _, info = read_meta(tmp_path / "again")
    assert info["vae_steps"] == 2 and "exported_from" not in info


def test_bench_performers_stream_trained_exports(chain):
    from npc_runtime.bench.cases import BenchCase
    from npc_runtime.train.performers import BaseLPMPerformer, OnlineLPMPerformer

    _, online = chain["online"]
    _, base = chain["base"]
    cfg, _, _ = read_meta(online / "export")
    n, rng = 10, np.random.default_rng(0)
    case = BenchCase(name="t", references=rng.integers(0, 256, (2, 32, 32, 3), np.uint8),
                     speak_audio=rng.standard_normal(n * 640).astype(np.float32) * 0.1,
                     listen_audio=np.zeros(n * 640, np.float32),
                     emotion=np.tile(np.eye(cfg.emotion_dim, dtype=np.float32)[:1], (n, 1)),
                     speaking=np.ones(n, bool), listening=np.zeros(n, bool))
    for performer in (OnlineLPMPerformer(online / "export"),
                      BaseLPMPerformer(base / "export", clip_chunks=2, steps=2)):
        frames = np.concatenate(list(performer.perform(case)))
        assert frames.shape == (n, 32, 32, 3) and frames.dtype == np.uint8
    # The VAE round trip needs ground truth: a world case (the 32 px micro model's size).
    from npc_runtime.bench.cases import world_case
    from npc_runtime.bench.performers import GroundTruthPerformer
    from npc_runtime.train.performers import VAERoundTripPerformer
    wc = world_case(3, 1.0, size=32)
    rt = np.concatenate(list(VAERoundTripPerformer(online / "export").perform(wc)))
    truth = np.concatenate(list(GroundTruthPerformer().perform(wc)))
    assert rt.shape == truth.shape and rt.dtype == np.uint8 and not np.array_equal(rt, truth)
    from npc_runtime.cli import main
    with pytest.raises(SystemExit, match="needs --online or --base"):
        main(["train", "bench", "--vae-roundtrip", "--out", "unused"])
    # What each performer ran with goes into the report (the Base's step count above all).
    assert performer.settings["steps"] == 2 and performer.settings["clip_chunks"] == 2
    from npc_runtime.bench.report import write_markdown
    on = OnlineLPMPerformer(online / "export")
    assert on.settings["steps_per_chunk"] == cfg.stream.online_steps
    agg = {"lip_sync_corr": 0.5}
    report = {"suite": "quick", "suite_version": 1, "cases": [],
              "performers": {"online_lpm": {"aggregate": agg, "settings": on.settings},
                             "base_lpm": {"aggregate": agg, "settings": performer.settings}}}
    md = write_markdown(report, online / "report.md").read_text()
    assert "- `base_lpm`: " in md and "steps 2" in md


def test_ship_records_bench_scores_and_refuses_a_report_without_the_online_lpm(chain, tmp_path):
    from npc_runtime.cli import main

    _, online = chain["online"]
    agg = {"lip_sync_corr": 0.42, "lip_sync_offset_frames": 1, "identity_csim": 0.9,
           "emotion_accuracy": 0.5, "fps": 30.0}
    report = {"suite": "quick", "suite_version": 1,
              "performers": {"online_lpm": {"aggregate": agg},
                             "ground_truth": {"aggregate": dict(agg, identity_csim=0.98)}},
              "checks": [{"check": "lip sync corr >= 0.8", "passed": False, "measured": "0.42"},
                         {"check": "streams >= 25 fps", "passed": True, "measured": "30"}]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    dest = tmp_path / "shipped"
    assert main(["train", "ship", str(online / "export"), "--dest", str(dest),
                 "--bench", str(tmp_path / "report.json")]) == 0
    _, trained, info = read_meta(dest)
    assert info["bench_lip_sync_corr"] == 0.42 and info["bench_ceiling_identity_csim"] == 0.98
    assert info["bench_checks_passed"] == "1/2"
    assert info["bench_checks_failed"] == "lip sync corr >= 0.8"
    assert info["stage"] == "online"

    del report["performers"]["online_lpm"]
    (tmp_path / "bad.json").write_text(json.dumps(report))
    with pytest.raises(SystemExit, match="no online_lpm"):
        main(["train", "ship", str(online / "export"), "--dest", str(tmp_path / "never"),
              "--bench", str(tmp_path / "bad.json")])
    assert not (tmp_path / "never").exists()
    dev = dict(json.loads((tmp_path / "report.json").read_text()), suite="dev")
    (tmp_path / "dev.json").write_text(json.dumps(dev))
    with pytest.raises(SystemExit, match="dev-suite report"):
        main(["train", "ship", str(online / "export"), "--dest", str(tmp_path / "never"),
              "--bench", str(tmp_path / "dev.json")])
    assert not (tmp_path / "never").exists()


def test_ship_sets_the_emotion_gain_only_as_benched(chain, tmp_path):
    from npc_runtime.cli import main

    _, online = chain["online"]
    src = str(online / "export")
    with pytest.raises(SystemExit, match="emotion_gain must be in"):
        main(["train", "ship", src, "--dest", str(tmp_path / "never"), "--emotion-gain", "9"])
    agg = {"lip_sync_corr": 0.42, "lip_sync_offset_frames": 1, "identity_csim": 0.9,
           "emotion_accuracy": 0.5, "fps": 30.0}
    report = {"suite": "quick", "suite_version": 1, "performers": {"online_lpm": {
        "aggregate": agg, "settings": {"emotion_gain": 1.0}}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    with pytest.raises(SystemExit, match="emotion_gain 1.0"):
        main(["train", "ship", src, "--dest", str(tmp_path / "never"), "--emotion-gain", "1.5",
              "--bench", str(tmp_path / "report.json")])
    assert not (tmp_path / "never").exists()
    assert main(["train", "ship", src, "--dest", str(tmp_path / "gained"),
                 "--emotion-gain", "1.5"]) == 0
    cfg, _, _ = read_meta(tmp_path / "gained")
    assert cfg.stream.emotion_gain == 1.5
    assert PerformanceModel.from_checkpoint(tmp_path / "gained").emotion_gain == 1.5
    report["performers"]["online_lpm"]["settings"]["emotion_gain"] = 1.5
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert main(["train", "ship", str(tmp_path / "gained"), "--dest", str(tmp_path / "shipped"),
                 "--bench", str(tmp_path / "report.json")]) == 0
    cfg, _, info = read_meta(tmp_path / "shipped")
    assert cfg.stream.emotion_gain == 1.5 and info["bench_lip_sync_corr"] == 0.42


def test_bench_runs_a_suites_long_stream_through_the_online_lpm_alone(chain, tmp_path,
                                                                      monkeypatch):
    import npc_runtime.bench.cases as cases
    import npc_runtime.bench.report as report
    from npc_runtime.cli import main

    suite = [cases.world_case(3, 1.0, size=32), cases.world_case(500, 1.6, size=32,
                                                                   name="long-00-1s")]
    monkeypatch.setattr(cases, "build_suite", lambda *a, **k: list(suite))
    calls = []

    def fake_run_quality(performers, run_cases, out, probe, suite, checks=None):
        calls.append(([p.name for p in performers], [c.name for c in run_cases], suite))
        return {"performers": {}, "checks": []}
    monkeypatch.setattr(report, "run_quality", fake_run_quality)
    _, online = chain["online"]
    _, base = chain["base"]
    assert main(["train", "bench", "--online", str(online / "export"), "--base",
                 str(base / "export"), "--base-steps", "2", "--suite", "full",
                 "--out", str(tmp_path)]) == 0
    assert calls == [(["online_lpm"], ["long-00-1s"], "full-long"),
                     (["online_lpm", "base_lpm"], ["world-003"], "full")]
    calls.clear()   # without an Online LPM there is no split: the Base runs every case
    assert main(["train", "bench", "--base", str(base / "export"), "--suite", "full",
                 "--out", str(tmp_path)]) == 0
    assert calls == [(["base_lpm"], ["world-003", "long-00-1s"], "full")]
