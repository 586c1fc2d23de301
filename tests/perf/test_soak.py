"""A short `npc-runtime soak` (CI size): every stream is cut and reconnected, NPCs churn."""

from __future__ import annotations

import json

from npc_runtime.perf.soak import SoakConfig, run_soak


def test_short_soak_meets_its_budgets(tmp_path, micro_yaml):
    cfg = SoakConfig(out=str(tmp_path / "soak"), npcs=2, minutes=0.6, model=str(micro_yaml),
                     threads=1, segment_s=(6.0, 9.0), disconnect_prob=1.0, churn_prob=1.0,
                     idle_churn_s=5.0, sample_s=3.0, warmup_s=8.0)
    report = run_soak(cfg)
    assert report["passed"], {k: report[k] for k in ("checks", "errors", "delivered_ratio",
                                                    "late_fraction", "rss_growth_after_warmup",
                                                    "identity_drift")}
    assert report["reconnects"] >= 2 and report["reconnects_resumed"] == report["reconnects"]
    assert report["npc_churn"] >= 1 and report["idle_npc_churn"] >= 1
    assert report["frames_delivered"] > 500 and report["server_exit_code"] == 0
    samples = report["samples"]
    assert len(samples) >= 5 and all(s["rss_mb"] > 0 for s in samples)
    assert max(s["cache_pages_used"] for s in samples) > 0
    saved = json.loads((tmp_path / "soak" / "soak.json").read_text())
    assert saved["passed"] and (tmp_path / "soak" / "soak.png").exists()
