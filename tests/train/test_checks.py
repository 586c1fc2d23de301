"""The training issue's bars, applied to bench reports: each check passes and fails for real."""

from npc_runtime.train.checks import must_show

GOOD = {"lip_sync_corr": 0.9, "lip_sync_offset_frames": 0, "identity_csim": 0.95,
        "emotion_accuracy": 0.85, "emotion_accuracy_strong": 0.9, "emotion_strong_windows": 40,
        "listen_nod_contrast": 0.5, "nod_rate_listen_per_min": 10.0,
        "nod_rate_silence_per_min": 2.0, "blink_rate_listen_per_min": 22.0,
        "blink_rate_silence_per_min": 12.0, "listen_blink_gain_per_min": 10.0,
        "quiet_mouth_open": 0.02, "fps": 30.0}
CEILING = dict(GOOD, identity_csim=1.0, quiet_mouth_open=0.0, fps=150.0)
BASE = dict(GOOD, lip_sync_corr=0.92, identity_csim=0.96, fps=2.8)
LONG = {"frames": 15000, "identity_first": 0.95, "identity_last": 0.94,
        "drift_sharpness": 0.01}


def report(online: dict, long: dict | None = LONG, base: bool = True) -> dict:
    perf = {"ground_truth": {"aggregate": CEILING, "cases": {}},
            "online_lpm": {"aggregate": online,
                           "cases": {"long-00-600s": long} if long else {}}}
    if base:
        perf["base_lpm"] = {"aggregate": BASE, "cases": {}}
    return {"performers": perf}


def test_a_model_meeting_every_bar_passes_every_check():
    checks = must_show(report(GOOD))
    assert len(checks) == 13 and all(ok for _, ok, _ in checks), checks


def test_each_shortfall_fails_its_own_check():
    cases = {"lip sync corr": dict(lip_sync_corr=0.7),
             "offset": dict(lip_sync_offset_frames=2),
             "identity within 10% of the ceiling": dict(identity_csim=0.85),
             "emotion": dict(emotion_accuracy_strong=0.7),
             "nods": dict(listen_nod_contrast=0.05),
             "blinks": dict(listen_blink_gain_per_min=1.0),
             "mouth still": dict(quiet_mouth_open=0.2),
             ">= 10x faster": dict(fps=25.0),
             "25 fps": dict(fps=20.0)}
    for name, change in cases.items():
        failed = [c for c, ok, _ in must_show(report(dict(GOOD, **change))) if not ok]
        assert any(name in c for c in failed), (name, failed)


def test_drift_and_missing_inputs_fail_rather_than_pass():
    drifted = must_show(report(GOOD, long=dict(LONG, identity_last=0.8)))
    assert [c for c, ok, _ in drifted if not ok] == [
        "stability over 600 s: identity last vs first within 5%"]
    missing = {c: ok for c, ok, _ in must_show(report(GOOD, long=None, base=False))}
    assert not missing["stability over a long stream"]
    assert not missing["distillation vs the Base LPM"]
    assert must_show({"performers": {}})[0][1] is False


def test_emotion_is_judged_on_strong_base_emotions_and_an_old_report_fails():
    # The all-window accuracy (neutral included) is reported beside it, not what is checked.
    ok = must_show(report(dict(GOOD, emotion_accuracy=0.5)))
    assert all(passed for _, passed, _ in ok)
    assert any("50.0%" in measured for c, _, measured in ok if c.startswith("emotion"))
    old = {k: v for k, v in GOOD.items() if k not in ("emotion_accuracy_strong",
                                                      "emotion_strong_windows")}
    failed = [(c, m) for c, passed, m in must_show(report(old)) if not passed]
    assert len(failed) == 1 and failed[0][0].startswith("emotion") and \
        "no emotion_accuracy_strong" in failed[0][1]


def test_blinks_are_judged_by_rate_and_an_old_report_fails():
    # Contrast alone would pass a face that blinks once a minute, while listening.
    rare = dict(GOOD, blink_rate_listen_per_min=1.0, blink_rate_silence_per_min=0.0,
                listen_blink_gain_per_min=1.0)
    failed = [c for c, ok, _ in must_show(report(rare)) if not ok]
    assert len(failed) == 1 and failed[0].startswith("blinks")
    old = {k: v for k, v in GOOD.items() if "blink" not in k}
    failed = [(c, m) for c, ok, m in must_show(report(old)) if not ok]
    assert len(failed) == 1 and "no blink rates" in failed[0][1]
