"""LPM-Bench-mini end to end: the ceiling scores near perfect, both floors clearly worse.

Runs the quick suite (three 12-second evaluation cases) with the shipped probes through the
ground-truth renderer (ceiling), the still reference image and uniform noise (floors).
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from PIL import Image

from npc_runtime.bench import metrics as M
from npc_runtime.bench.cases import SUITES, build_suite, load_cases_yaml, world_case
from npc_runtime.bench.performers import (FolderPerformer, GroundTruthPerformer, NoisePerformer,
                                          Performer, ReferencePerformer)
from npc_runtime.bench.probes import Probe
from npc_runtime.bench.runner import run_performer, run_performers
from npc_runtime.cli import main
from npc_runtime.world.identity import EVAL_IDENTITY_SEEDS
from npc_runtime.world.lines import EVAL_LINES
from npc_runtime.world.performance import EXPRESSION_INDEX
from npc_runtime.world.speech import Voice, speak

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def probe():
    return Probe.load()


@pytest.fixture(scope="module")
def scores(probe):
    cases = build_suite("quick")
    out = {}
    for performer in (GroundTruthPerformer(), ReferencePerformer(), NoisePerformer()):
        result, _ = run_performer(performer, cases, probe)
        out[performer.name] = result["aggregate"]
    return out


def test_suite_is_fixed_and_uses_evaluation_identities():
    a, b = build_suite("quick"), build_suite("quick")
    assert [c.name for c in a] == [c.name for c in b]
    for x, y in zip(a, b):
        assert np.array_equal(x.gt_perf, y.gt_perf) and np.array_equal(x.speak_audio,
                                                                        y.speak_audio)
        assert x.identity.seed in EVAL_IDENTITY_SEEDS
        assert x.num_frames == SUITES["quick"].duration_s * 25
    assert len({c.identity.seed for c in a}) == len(a)


def test_dev_suite_shares_no_case_with_the_reported_suites():
    def indices(name):
        spec = SUITES[name]
        return set(range(spec.first_case, spec.first_case + spec.cases))
    dev = indices("dev")
    assert dev and not dev & (indices("quick") | indices("full") | {500})   # 500: long stream
    cases = build_suite("dev")
    assert [c.name for c in cases] == [f"world-{i:03d}" for i in sorted(dev)]
    quick = {c.identity.seed for c in build_suite("quick")}
    assert all(c.identity.seed in EVAL_IDENTITY_SEEDS and c.identity.seed not in quick
               for c in cases)


def test_long_stream_length_is_a_case_parameter():
    case = world_case(500, 75.0)
    assert case.num_frames == 75 * 25 and len(case.speak_audio) == 75 * 25 * 640


def test_ceiling_is_near_perfect(scores):
    gt = scores["ground_truth"]
    assert gt["lip_sync_corr"] > 0.95 and gt["lip_sync_abs_offset_frames"] <= 1
    assert gt["identity_csim"] > 0.95
    assert gt["identity_rank1_min_case"] == 1.0  # identities never confused, on any frame
    # Shipped probes: 0.97 / 0.80, strong windows 20 of 21 (the ground-truth parameters
    # themselves score 1.0; NNLS decoding, up to session 24: 0.91).
    assert gt["emotion_accuracy"] > 0.85 and gt["emotion_corr"] > 0.7
    assert gt["emotion_accuracy_strong"] >= 0.9
    assert gt["listen_nod_gain_per_min"] > 5 and gt["listen_nod_contrast"] > 0.8
    # More blinks while the partner speaks: 7.3 a minute here (5.0 on the full suite).
    assert gt["listen_blink_gain_per_min"] >= 3
    assert 8 < gt["blink_rate_per_min"] < 35
    assert gt["quiet_mouth_open"] < 0.05
    assert 0.8 < gt["chunk_boundary_ratio"] < 1.25
    assert abs(gt["drift_identity"]) < 0.05


def test_still_reference_floor_fails_what_it_should(scores):
    gt, ref = scores["ground_truth"], scores["reference_still"]
    assert ref["lip_sync_corr"] < gt["lip_sync_corr"] - 0.5
    assert ref["lip_sync_confidence"] < gt["lip_sync_confidence"] - 0.2
    assert ref["listen_nod_contrast"] < gt["listen_nod_contrast"] - 0.5
    assert ref["blink_rate_per_min"] < gt["blink_rate_per_min"] - 5
    assert ref["listen_blink_gain_per_min"] < 0.5 * gt["listen_blink_gain_per_min"]
    assert ref["emotion_accuracy"] < gt["emotion_accuracy"] - 0.25
    assert ref["emotion_corr"] < gt["emotion_corr"] - 0.3
    assert ref["fpd"] > 1.5 * gt["fpd"]


def test_noise_floor_fails_what_it_should(scores):
    gt, noise = scores["ground_truth"], scores["noise"]
    assert noise["lip_sync_corr"] < gt["lip_sync_corr"] - 0.5
    assert noise["identity_csim"] < gt["identity_csim"] - 0.5
    assert noise["identity_rank1"] < gt["identity_rank1"] - 0.3
    assert noise["emotion_accuracy"] < gt["emotion_accuracy"] - 0.25
    assert noise["listen_nod_contrast"] < gt["listen_nod_contrast"] - 0.5
    assert noise["listen_blink_gain_per_min"] < 0.5 * gt["listen_blink_gain_per_min"]
    assert noise["quiet_mouth_motion"] > 3 * gt["quiet_mouth_motion"]
    assert noise["flicker"] > 20 * gt["flicker"]
    assert noise["fpd"] > 3 * gt["fpd"]


def test_shipped_performers_satisfy_the_protocol():
    for p in (GroundTruthPerformer(), ReferencePerformer(), NoisePerformer()):
        assert isinstance(p, Performer)


def test_folder_of_frames_scores_like_the_performer_that_made_it(tmp_path, probe):
    case = world_case(1, 4.0)
    frames = np.concatenate(list(GroundTruthPerformer().perform(case)))
    np.save(tmp_path / f"{case.name}.npy", frames)
    direct, _ = run_performer(GroundTruthPerformer(), [case], probe)
    folder, _ = run_performer(FolderPerformer(tmp_path), [case], probe)
    for key in ("lip_sync_corr", "identity_csim", "emotion_corr", "flicker"):
        assert folder["aggregate"][key] == pytest.approx(direct["aggregate"][key])
    # Several performers run case by case, each in turn, so their speeds share the host's hour
    # (the Online LPM's speed-up over the Base is a ratio of two of them).
    calls = []

    class Logged(GroundTruthPerformer):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def perform(self, c):
            calls.append(self.name)
            return super().perform(c)

    results = run_performers([Logged("a"), Logged("b")], [case, case], probe)
    assert calls == ["a", "b", "a", "b"]
    assert results["a"][0]["aggregate"]["lip_sync_corr"] == pytest.approx(
        direct["aggregate"]["lip_sync_corr"])
    with pytest.raises(ValueError, match="distinct names"):
        run_performers([Logged("a"), Logged("a")], [case], probe)


def test_custom_yaml_cases_through_the_cli(tmp_path):
    line = speak(EVAL_LINES["en"][0], Voice("en-us-nyc+m2"))
    partner = speak(EVAL_LINES["en"][1], Voice("en-029+f1"))
    sf.write(tmp_path / "line.wav", line.audio, 16_000)
    sf.write(tmp_path / "partner.wav", np.concatenate([np.zeros(16_000 * 2, np.float32),
                                                        partner.audio]), 44_100)  # resampled
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump({"cases": [{
        "name": "my-line", "speak": "line.wav", "listen": "partner.wav", "duration_s": 5.0,
        "identity": {"seed": EVAL_IDENTITY_SEEDS.start + 7},
        "emotion": [{"start_s": 0.0, "tag": "happy", "intensity": 0.8},
                    {"start_s": 3.0, "tag": "worried", "intensity": 0.5}]}]}))
    (case,) = load_cases_yaml(tmp_path / "cases.yaml")
    assert case.num_frames == 125 and case.speaking.any() and case.gt_perf is None
    out = tmp_path / "report"
    assert main(["bench", "quality", "--cases", str(tmp_path / "cases.yaml"), "--out", str(out),
                 "--performers", "reference_still,noise"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["performers"]) == {"reference_still", "noise"}
    assert (out / "curves.png").stat().st_size > 10_000
    frames = np.asarray(Image.open(out / report["frames"]))
    assert frames.shape == (3 * 128, 6 * 128, 3)   # reference row (no truth), then 2 performers
    md = (out / "report.md").read_text()
    row = next(line for line in md.splitlines() if "`lip_sync_corr`" in line)
    assert f"{report['performers']['noise']['aggregate']['lip_sync_corr']:.3f}" in row
    video = out / report["performers"]["noise"]["video"]
    assert video.exists() and video.stat().st_size > 1000


def test_world_performance_track_reads_as_tagged():
    # The decoding must read the world's own performance track (no image, no probe; the
    # world adds nods, speech and idle motion on top of the emotion) as tagged; otherwise
    # the bench measures its decoder, not a model. Cases outside every suite. Last in this
    # file: building cases synthesises speech, which shifts later suites of this process
    # (docs/bench.md, the espeak note) and so the ceiling test's scores.
    right = total = 0
    for index in range(200, 220):
        case = world_case(index, 40.0)
        read = M.per_second(np.asarray(case.gt_perf)[:, EXPRESSION_INDEX], case.fps)
        want = M.per_second(np.asarray(case.emotion, np.float32), case.fps)
        for _, w, tag, pred in M.labelled_windows(read, want):
            if tag and w[tag] >= 0.5:
                total += 1
                right += tag == pred
    assert total > 300 and right / total >= 0.99
