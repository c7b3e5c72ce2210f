"""U-Net backbone: shapes, periodicity, use of noise level and cond, errors, gradients, sizes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from assimilate.nets import (
    UNET_SIZES,
    UNet,
    build_unet,
    count_parameters,
    sinusoidal_features,
)

# Three levels (spatial sizes divisible by 4) with attention: the most demanding small net.
THREE_LEVELS = {"base_channels": 8, "channel_mults": (1, 2, 2), "embedding_dim": 16}
SPACE = {1: (32,), 2: (16, 16)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """These nets are tiny: extra intra-op threads only spin against other jobs on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomised(net: UNet, seed: int = 0) -> UNet:
    """Perturb every parameter, so the zero-initialised output layer hides nothing."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return net.eval()


def _net(dims: int, cond_channels: int = 0, attention: bool = True) -> UNet:
    torch.manual_seed(0)
    net = UNet(dims, channels=2, cond_channels=cond_channels, attention=attention, **THREE_LEVELS)
    return _randomised(net)


def _inputs(
    dims: int, cond_channels: int = 0, batch: int = 2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    space = SPACE[dims]
    x = torch.randn(batch, 2, *space)
    c_noise = torch.randn(batch)
    cond = torch.randn(batch, cond_channels, *space) if cond_channels else None
    return x, c_noise, cond


@pytest.mark.parametrize(("dims", "space"), [(1, (64,)), (1, (32,)), (2, (32, 32)), (2, (16, 32))])
@pytest.mark.parametrize("cond_channels", [0, 3])
def test_output_has_the_shape_of_the_input(
    dims: int, space: tuple[int, ...], cond_channels: int
) -> None:
    net = build_unet("tiny", dims, channels=2, cond_channels=cond_channels)
    x = torch.randn(2, 2, *space)
    cond = torch.randn(2, cond_channels, *space) if cond_channels else None
    with torch.no_grad():
        out = net(x, torch.rand(2), cond)
        assert out.shape == x.shape
        assert torch.count_nonzero(out) == 0, "the output layer starts at zero"
        assert _randomised(net)(x, torch.rand(2), cond).shape == x.shape


@pytest.mark.parametrize(("dims", "shift"), [(1, (12,)), (2, (4, -8))])
def test_circular_shift_commutes_with_the_network(dims: int, shift: tuple[int, ...]) -> None:
    net = _net(dims, cond_channels=1)
    torch.manual_seed(1)
    x, c_noise, cond = _inputs(dims, cond_channels=1)
    axes = tuple(range(2, 2 + dims))
    with torch.no_grad():
        out = net(x, c_noise, cond)
        shifted = net(x.roll(shift, axes), c_noise, cond.roll(shift, axes))
    # Zero padding breaks this near the boundaries.
    torch.testing.assert_close(shifted, out.roll(shift, axes), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(shifted, out, atol=1e-3), "the output should vary in space"


@pytest.mark.parametrize("dims", [1, 2])
def test_noise_level_changes_the_output(dims: int) -> None:
    net = _net(dims)
    x, _, _ = _inputs(dims)
    with torch.no_grad():
        low = net(x, torch.full((2,), -1.0))
        high = net(x, torch.full((2,), 1.0))
        scalar = net(x, torch.tensor(1.0))
    assert (low - high).abs().max() > 1e-3
    torch.testing.assert_close(scalar, high)


@pytest.mark.parametrize("dims", [1, 2])
def test_cond_changes_the_output(dims: int) -> None:
    net = _net(dims, cond_channels=2)
    x, c_noise, cond = _inputs(dims, cond_channels=2)
    with torch.no_grad():
        difference = net(x, c_noise, cond) - net(x, c_noise, cond + torch.randn_like(cond))
    assert difference.abs().max() > 1e-3


def test_samples_in_a_batch_are_independent() -> None:
    net = _net(2, cond_channels=1).train()  # batch statistics would mix samples in training
    x, c_noise, cond = _inputs(2, cond_channels=1, batch=3)
    with torch.no_grad():
        together = net(x, c_noise, cond)
        alone = net(x[1:2], c_noise[1:2], cond[1:2])
    torch.testing.assert_close(together[1:2], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("cond_channels", "cond_shape", "message"),
    [
        (0, (2, 1, 32), r"cond_channels=0\) takes no cond, got cond of shape \(2, 1, 32\)"),
        (2, (2, 1, 32), r"expected.*\(2, 2, 32\), got \(2, 1, 32\)|\(2, 2, 32\), got \(2, 1, 32\)"),
        (2, (2, 2, 16), r"\(2, 2, 32\), got \(2, 2, 16\)"),
        (2, (3, 2, 32), r"\(2, 2, 32\), got \(3, 2, 32\)"),
        (2, None, r"cond is required, expected shape \(2, 2, 32\)"),
    ],
)
def test_bad_cond_is_refused(
    cond_channels: int, cond_shape: tuple[int, ...] | None, message: str
) -> None:
    net = build_unet("tiny", 1, channels=1, cond_channels=cond_channels)
    cond = None if cond_shape is None else torch.randn(cond_shape)
    with pytest.raises(ValueError, match=message):
        net(torch.randn(2, 1, 32), torch.rand(2), cond)


def test_bad_inputs_and_arguments_are_refused() -> None:
    net = UNet(2, channels=1, **THREE_LEVELS)
    with pytest.raises(ValueError, match=r"divisible by 4, got spatial shape \(32, 30\)"):
        net(torch.randn(1, 1, 32, 30), torch.rand(1))
    with pytest.raises(ValueError, match=r"\(batch, channels, y, x\).*got shape \(1, 3, 32, 32\)"):
        net(torch.randn(1, 3, 32, 32), torch.rand(1))
    with pytest.raises(ValueError, match=r"c_noise must have shape \(1,\), got \(2,\)"):
        net(torch.randn(1, 1, 32, 32), torch.rand(2))
    with pytest.raises(ValueError, match=r"unknown UNet size 'huge'; allowed sizes: tiny, small"):
        build_unet("huge", 1, channels=1)
    with pytest.raises(ValueError, match="dims=3 must be 1 or 2"):
        UNet(3, channels=1)
    with pytest.raises(ValueError, match="embedding_dim=15 must be an even integer"):
        UNet(1, channels=1, embedding_dim=15)


@pytest.mark.parametrize("dims", [1, 2])
def test_gradients_reach_every_parameter(dims: int) -> None:
    net = _net(dims, cond_channels=1).train()
    x, c_noise, cond = _inputs(dims, cond_channels=1)
    loss = (net(x, c_noise, cond) * torch.randn_like(x)).sum()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} has no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{name}: zero gradient"


def test_one_step_moves_a_fresh_network_off_zero() -> None:
    torch.manual_seed(0)
    net = build_unet("tiny", 1, channels=1)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1)
    x, target = torch.randn(4, 1, 32), torch.randn(4, 1, 32)
    for _ in range(2):
        optimiser.zero_grad()
        ((net(x, torch.rand(4)) - target) ** 2).mean().backward()
        optimiser.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_parameter_counts_of_the_presets() -> None:
    with torch.device("meta"):  # shapes only: the large presets allocate nothing
        counts = {
            (size, dims): count_parameters(build_unet(size, dims, channels=1))
            for size in UNET_SIZES
            for dims in (1, 2)
        }
    assert counts["tiny", 1] < 20_000 and counts["tiny", 2] < 20_000
    assert 200_000 <= counts["small", 1] <= 350_000
    assert 500_000 <= counts["small", 2] <= 1_500_000
    for dims in (1, 2):
        ordered = [counts[size, dims] for size in ("tiny", "small", "base", "large")]
        assert ordered == sorted(ordered) and len(set(ordered)) == 4


def test_sinusoidal_features() -> None:
    features = sinusoidal_features(torch.tensor([0.0, 2.0]), dim=8)
    assert features.shape == (2, 8)
    torch.testing.assert_close(features[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    torch.testing.assert_close(features[1, 0], torch.cos(torch.tensor(2.0)))  # frequency 1
    assert not torch.allclose(features[0], features[1])


def test_config_rebuilds_the_network_from_a_state_dict() -> None:
    net = _net(1, cond_channels=1)
    rebuilt = UNet(**net.config)
    rebuilt.load_state_dict(net.state_dict())  # strict: every key and shape must match
    x, c_noise, cond = _inputs(1, cond_channels=1)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x, c_noise, cond), net(x, c_noise, cond))


def test_bounded_padding_leaves_the_far_edge_untouched_by_the_near_edge() -> None:
    from assimilate.nets.unet import same_conv

    x = torch.randn(1, 1, 9, 13)
    changed = x.clone()
    changed[..., :, 0] += 1.0  # the west edge
    for periodic, moved in ((True, True), (False, False)):
        torch.manual_seed(0)
        conv = same_conv(2, 1, 1, periodic=periodic)
        with torch.no_grad():
            far = (conv(changed) - conv(x))[..., :, -1].abs().max()  # the east edge
        assert bool(far > 1e-3) is moved, (periodic, far)


def test_a_bounded_network_takes_any_size_and_keeps_effects_local() -> None:
    """33 x 129 is padded up to 36 x 132 and cropped back; on it a change on the west edge
    reaches the east edge only through the group norms' statistics (measured: 5 % of its
    effect on the west edge, 128 % with circular padding)."""
    effects = {}
    for periodic in (True, False):
        torch.manual_seed(0)
        net = _randomised(UNet(2, channels=1, periodic=periodic, **THREE_LEVELS))
        space = (36, 132) if periodic else (33, 129)
        x = torch.randn(1, 1, *space, generator=torch.Generator().manual_seed(2))
        changed = x.clone()
        changed[..., :, 0] += 1.0
        with torch.no_grad():
            out, moved = net(x, torch.zeros(1)), net(changed, torch.zeros(1))
        assert out.shape == x.shape
        effect = (moved - out).abs()
        effects[periodic] = float(effect[..., :, -1].mean() / effect[..., :, 0].mean())
    assert effects[True] > 0.2, effects  # the east edge is the west edge's neighbour
    assert effects[False] < 0.1 * effects[True], effects
