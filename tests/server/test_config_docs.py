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
