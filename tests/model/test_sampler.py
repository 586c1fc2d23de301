import pytest
import torch

from npc_runtime.sampler import flow_timesteps, sample_euler, sample_renoise, with_guidance


def test_euler_is_exact_on_a_straight_flow():
    x0, noise = torch.randn(3, 4), torch.randn(3, 4)

    def velocity(x, t):                                  # the exact flow towards x0 from anywhere
        return (x - x0) / t
    out = sample_euler(velocity, noise, flow_timesteps(2))
    torch.testing.assert_close(out, x0)
    out = sample_renoise(velocity, noise, flow_timesteps(3), lambda: torch.randn(3, 4))
    torch.testing.assert_close(out, x0)
    # A wrong field is not accepted by accident.
    assert not torch.allclose(sample_euler(lambda x, t: x, noise, flow_timesteps(2)), x0)


def test_timesteps_and_guidance():
    ts = flow_timesteps(4, shift=3.0)
    assert ts[0] == 1.0 and ts[-1] == 0.0 and all(a > b for a, b in zip(ts, ts[1:]))
    assert ts[2] > 0.5                                   # shift spends steps at high noise
    with pytest.raises(ValueError):
        flow_timesteps(0)
    g = with_guidance(lambda x, t: x * 2, lambda x, t: x, scale=3.0)
    torch.testing.assert_close(g(torch.ones(2), 0.5), torch.full((2,), 4.0))
