"""The config file documented in docs/serving.md is exactly loadable (docs cannot drift)."""

from pathlib import Path

from npc_runtime.server.config import ServerConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def test_documented_config_yaml_loads_and_validates(tmp_path):
    text = DOC.read_text()
    block = text.split("### Config file", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    path = tmp_path / "server.yaml"
    path.write_text(block)
    cfg = ServerConfig.from_yaml(path)
    cfg.validate()
    assert cfg.address == "127.0.0.1" and cfg.port == 50051
    assert cfg.scheduler.max_batch == 64 and cfg.admission.measured is True


def test_model_emotion_gain_reaches_the_model_and_bad_values_are_refused(tmp_path):
    import pytest

    from npc_runtime.config import preset, save_config
    from npc_runtime.server.app import load_model

    with pytest.raises(ValueError, match="model_emotion_gain"):
        ServerConfig.from_dict({"model_emotion_gain": -1})
    with pytest.raises(ValueError, match="model_emotion_gain"):
        ServerConfig.from_dict({"model_emotion_gain": 4.5})
    path = tmp_path / "tiny.yaml"
    save_config(preset("tiny"), path)
    own = load_model(ServerConfig.from_dict({"model": str(path)}))
    assert own.emotion_gain == 1.0 and "emotion_gain" not in own.describe()["info"]
    model = load_model(ServerConfig.from_dict({"model": str(path), "model_emotion_gain": 1.5}))
    assert model.emotion_gain == 1.5 and model.describe()["info"]["emotion_gain"] == 1.5
