import pytest

from npc_runtime.pipeline import PerformanceModel


@pytest.fixture(scope="session")
def model():
    """The real default model; one sampling step keeps it well inside real time on 2 shared
    CPU cores (the pacing tests measure the server, not the model's speed)."""
    return PerformanceModel.load_default(steps=1, max_sessions=4)
