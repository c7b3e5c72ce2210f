"""One training loop for every model in the project (emulator, forecaster, controller).

The loop is plain and reads top to bottom: draw the batch of this step, compute the mean
of a per-sample loss, clip, step AdamW, update the EMA weights, log, validate, and write
an atomic checkpoint now and then. Randomness is a function of ``(seed, step, rank)``
only, so a run resumed from a checkpoint continues exactly as the uninterrupted run.

Checkpoints are plain dictionaries of tensors and strings, loaded with
``torch.load(..., weights_only=True)``: model and EMA ``state_dict``, optimizer state,
step, the validated configuration (JSON) and normalisation statistics. No code is pickled.

Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in DistributedDataParallel
(gloo on CPU, nccl on CUDA); each rank draws its own batches and rank 0 writes.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from assimilate.config import TrainingConfig
from assimilate.errors import TrainingError
from pde.io.output import Output, claim
from pde.io.progress import tqdm

__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainingConfig",
    "TrainingError",
    "claim_checkpoint",
    "file_identity",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "select_device",
    "writer_rank",
]

CHECKPOINT_FORMAT = "assimilate.checkpoint/1"
# (model, batch, generator) -> per-sample loss (batch,)
LossFn = Callable[[nn.Module, Any, torch.Generator], torch.Tensor]
# (step, generator) -> the batch of that step
BatchFn = Callable[[int, torch.Generator], Any]


def select_device() -> torch.device:
    """CUDA when present (the local rank's GPU under torchrun), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def save_checkpoint(output: Output, payload: dict[str, Any]) -> None:
    """Write ``payload`` to the claimed ``output`` atomically (temporary sibling, rename)."""
    with output.atomic() as scratch:
        torch.save({"format": CHECKPOINT_FORMAT, **payload}, scratch)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *,
                    kind: str | None = None) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``);
    with ``kind``, refuse a checkpoint of another kind of model."""
    path = Path(path)
    if path.is_dir():
        raise TrainingError(f"checkpoint '{path}' is a directory, expected a file")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at '{path}'")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means "not ours"
        # torch's own message advises weights_only=False, which would run pickled code
        raise TrainingError(f"'{path}' is not a readable assimilate checkpoint (damaged, "
                            f"truncated or another kind of file: {type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"'{path}' is not an assimilate checkpoint ({CHECKPOINT_FORMAT})")
    if kind is not None and payload.get("kind") != kind:
        article = "an" if kind[0] in "aeiou" else "a"
        raise ValueError(f"'{path}' holds a model of kind {payload.get('kind')!r}, "
                         f"expected {article} {kind}")
    return payload


def file_identity(path: str | Path) -> str:
    """A content hash of a checkpoint file: retrained at the same path, another identity."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def writer_rank() -> bool:
    """Whether this process writes outputs: always, except on ranks > 0 under torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def claim_checkpoint(out: str | Path, inputs: Sequence[str | Path] = ()) -> Iterator[Output | Path]:
    """The claimed checkpoint output (see :mod:`pde.io.output`); ranks > 0 get the bare path."""
    if not writer_rank():
        yield Path(out)
        return
    log = Path(f"{out}.metrics.jsonl")
    if log.is_dir():
        raise TrainingError(f"metrics log '{log}' is a directory, expected a file")
    with claim(out, kind="file", inputs=inputs, resumable=True) as output:
        yield output


@contextlib.contextmanager
def _distributed(device: torch.device) -> Iterator[tuple[int, int]]:
    """``(rank, world_size)``; initialises the process group under torchrun.

    A DDP model must be freed inside, after a barrier, while its process group is alive
    and idle: freed after ``destroy_process_group``, its reducer would join gloo's worker
    threads holding the GIL while one of them waits for the GIL to finish (a teardown
    deadlock).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        yield 0, 1
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend)
    try:
        yield torch.distributed.get_rank(), world
    finally:
        torch.distributed.destroy_process_group()


class _EMA:
    """Exponential moving average of a model's floating-point parameters and buffers."""

    def __init__(self, model: nn.Module) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float) -> None:
        for average, current in zip(self.model.state_dict().values(),
                                    model.state_dict().values(), strict=True):
            if average.dtype.is_floating_point:
                average.lerp_(current, 1.0 - decay)
            else:
                average.copy_(current)


def _learning_rate(config: TrainingConfig, step: int) -> float:
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    return config.learning_rate * warm


def _step_generator(config: TrainingConfig, step: int, rank: int, device: torch.device):
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed * 1_000_003 + step * 1009 + rank)
    return generator


def fit(model: nn.Module, loss_fn: LossFn, batch_fn: BatchFn, config: TrainingConfig,
        out: str | Path | Output, *, metadata: dict[str, Any],
        validation_fn: Callable[[nn.Module], float] | None = None, progress: bool = True,
        allow_other_data: bool = False) -> Path:
    """Train ``model`` for ``config.steps`` steps, checkpointing to ``out``; resume if present.

    ``metadata`` must hold ``config`` (the resolved experiment configuration as JSON) and
    may hold ``normalisation`` (a dict of tensors), ``kind``, ``identity`` (what must
    match to resume; default ``config``) and ``data_identity`` (the training store); it is
    stored in every checkpoint. An existing checkpoint at ``out`` with the same identity is
    resumed, another is refused, and so is a resume on another data store unless
    ``allow_other_data``. ``out`` is a path or an output claimed with
    :func:`claim_checkpoint`. Metrics go to ``out`` + ``.metrics.jsonl``. The body is the
    training loop of the module doc, to be read top to bottom.
    """
    if not isinstance(out, Output) and writer_rank():
        with claim_checkpoint(out) as output:
            return fit(model, loss_fn, batch_fn, config, output, metadata=metadata,
                       validation_fn=validation_fn, progress=progress,
                       allow_other_data=allow_other_data)
    output = out if isinstance(out, Output) else None
    out = output.path if output is not None else Path(out)
    device = select_device()
    optimizer, ema, start = _start(model, device, config, out, output, metadata,
                                   allow_other_data)
    log = _MetricsLog(_log_path(out), config, validation_fn)
    with _no_orphan_log(log.path, out, output is not None), \
            _distributed(device) as (rank, world):
        trained = model if world == 1 else nn.parallel.DistributedDataParallel(
            model, device_ids=None if device.type == "cpu" else [device])
        autocast = config.mixed_precision and device.type == "cuda"
        bar = tqdm(total=config.steps, initial=start, disable=not (progress and rank == 0),
                   unit="step", desc=metadata.get("kind", "train"))
        last_good = start
        for step in range(start, config.steps):
            generator = _step_generator(config, step, rank, device)
            batch = batch_fn(step, generator)
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(config, step)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = loss_fn(trained, batch, generator).mean()
            _require_finite(loss, step, out, last_good)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            ema.update(model, config.ema_decay)
            bar.update(1)
            if rank == 0:
                log.step(step, loss, grad_norm, config.batch_size * world, ema.model, bar)
            done = step + 1
            if output is not None and (done % config.checkpoint_every == 0
                                       or done == config.steps):
                save_checkpoint(output, _payload(done, metadata, model, ema, optimizer, config))
                last_good = done
        bar.close()
        if world > 1:
            torch.distributed.barrier()  # free the DDP reducer now (_distributed)
            del trained
    return out


def _start(model: nn.Module, device: torch.device, config: TrainingConfig, out: Path,
           output: Output | None, metadata: dict[str, Any], allow_other_data: bool
           ) -> tuple[torch.optim.Optimizer, _EMA, int]:
    """``(AdamW, EMA, first step)``: the model on ``device``, resumed from ``out`` if that
    checkpoint belongs to this run; with an ``output``, room for a checkpoint checked
    and the metrics log cut back to the first step, before any step."""
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    ema = _EMA(model)
    start = _resume(out, metadata, model, ema, optimizer, allow_other_data)
    if output is not None:  # model, EMA and AdamW's two moments: known before any step
        output.require(4 * sum(t.numel() * t.element_size() for t in model.state_dict().values()),
                       what="a checkpoint")
        _truncate_log(_log_path(out), start)
    return optimizer, ema, start


def _log_path(out: Path) -> Path:
    return out.with_name(out.name + ".metrics.jsonl")


def _require_finite(loss: torch.Tensor, step: int, out: Path, last_good: int) -> None:
    if not torch.isfinite(loss):
        raise TrainingError(
            f"loss became {loss.item()} at step {step}; the last good checkpoint is "
            f"'{out}' at step {last_good}" + ("" if out.exists() else " (none written)")
            + "; lower training.learning_rate or check the data"
        )


class _MetricsLog:
    """The metrics log (JSON lines) of rank 0: every ``log_every`` steps and at the last,
    the loss, gradient norm, learning rate and throughput since the last record, and every
    ``validate_every`` steps the validation of the EMA weights."""

    def __init__(self, path: Path, config: TrainingConfig,
                 validation_fn: Callable[[nn.Module], float] | None) -> None:
        self.path, self.config, self.validation_fn = path, config, validation_fn
        self.tick, self.samples = time.perf_counter(), 0

    def step(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor, samples: int,
             ema: nn.Module, bar) -> None:
        """After training step ``step`` on ``samples`` samples (all ranks together)."""
        config, done = self.config, step + 1
        self.samples += samples
        if done % config.log_every and done != config.steps:
            return
        rate = self.samples / max(time.perf_counter() - self.tick, 1e-9)
        record = {"step": done, "loss": loss.item(), "grad_norm": float(grad_norm),
                  "lr": _learning_rate(config, step), "samples_per_s": rate}
        if self.validation_fn is not None and (done % config.validate_every == 0
                                               or done == config.steps):
            record["validation_loss"] = float(self.validation_fn(ema))
        _append_jsonl(self.path, record)
        bar.set_postfix(loss=f"{record['loss']:.4f}", samples_s=f"{rate:.0f}")
        self.tick, self.samples = time.perf_counter(), 0


@contextlib.contextmanager
def _no_orphan_log(log_path: Path, out: Path, writes: bool) -> Iterator[None]:
    """A run that fails before writing its first checkpoint leaves no metrics log either."""
    fresh = writes and not out.exists()
    try:
        yield
    except BaseException:
        if fresh and not out.exists():
            log_path.unlink(missing_ok=True)
        raise


def _payload(step, metadata, model, ema, optimizer, config) -> dict[str, Any]:
    return {
        **metadata,
        "step": step,
        "training": config.model_dump_json(),
        "model": model.state_dict(),
        "ema": ema.model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }


def _resume(out: Path, metadata: dict[str, Any], model, ema, optimizer,
            allow_other_data: bool) -> int:
    """Load the checkpoint at ``out`` if it belongs to this run; return the step reached."""
    if out.is_dir():
        raise TrainingError(f"checkpoint path '{out}' is a directory, expected a file")
    if not out.exists():
        if not out.parent.is_dir():
            raise TrainingError(f"directory '{out.parent}' for checkpoint '{out}' does not exist")
        return 0
    saved = load_checkpoint(out, map_location=next(model.parameters()).device)
    if saved.get("identity", saved.get("config")) != metadata.get("identity", metadata["config"]):
        raise TrainingError(
            f"checkpoint '{out}' was trained with another configuration; "
            "choose another --out or delete it to start over"
        )
    before, now = saved.get("data_identity"), metadata.get("data_identity")
    if before is not None and now is not None and before != now and not allow_other_data:
        raise TrainingError(
            f"checkpoint '{out}' was trained on the store '{saved.get('data', '?')}', and "
            f"--data '{metadata.get('data', '?')}' is another store; pass --allow-other-data "
            "to continue training on it, or choose another --out")
    expected = model.state_dict()
    changed = sorted(key for key, value in saved["model"].items()
                     if key in expected and value.shape != expected[key].shape)
    if changed:  # same settings, but a network this version builds differently
        raise TrainingError(
            f"checkpoint '{out}' holds a network of other shapes than this version builds "
            f"({', '.join(changed)}); choose another --out or delete it to start over")
    model.load_state_dict(saved["model"])
    ema.model.load_state_dict(saved["ema"])
    optimizer.load_state_dict(saved["optimizer"])
    return int(saved["step"])


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    clean = {key: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for key, v in record.items()}
    with path.open("a") as handle:
        handle.write(json.dumps(clean) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Drop records past ``step`` (a resumed run rewrites them) and any line a killed run
    left half-written."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # torn by a kill mid-write
        if isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept))
