import pytest

from tests.perf.micro_model import write_micro_yaml


@pytest.fixture(scope="session")
def micro_yaml(tmp_path_factory):
    """Model config YAML of the micro architecture, for sidecars started as subprocesses."""
    return write_micro_yaml(tmp_path_factory.mktemp("micro") / "micro.yaml")
