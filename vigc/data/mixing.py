"""Mix several training datasets into one stream of batches, reproducibly and resumably, across ranks.

Two ways, both batch samplers for a ``DataLoader`` over a `MixedDataset`:

* `RatioMixer` — every batch comes from ONE dataset, drawn with probability proportional to its
  ``sample_ratio`` (the original's iteration runner: VIG and VIC batches of LLaVA, OKVQA, ...).
* `ConcatSampler` — the datasets concatenated and shuffled together, epoch by epoch.

Both are purely step-indexed: batch ``step`` on ``rank`` is a function of (seed, sizes, ratios, batch size, world
size, step) and nothing else, so resuming at the exact batch needs only the step. Every rank computes the same
dataset draw for a step and takes its own disjoint slice of that step's global batch.

Each dataset is read as an endless stream of shuffled epochs; position ``p`` of dataset ``d`` is record
``permutation(seed, d, p // len(d))[p % len(d)]`` of epoch ``p // len(d)``. The k-th batch drawn from ``d``
covers positions ``[k * B * W, (k + 1) * B * W)``; rank ``r`` takes ``[k * B * W + r * B, k * B * W + (r + 1) * B)``.
A batch may span two epochs, and a dataset smaller than a global batch repeats records within it.

A DataLoader prefetches, so the sampler runs ahead of training: save the number of batches the training loop
has consumed, and resume with ``start_step`` set to it (`RatioMixer.state_dict` / `load_state_dict` wrap this).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import random
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sized
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from torch.utils.data import Dataset, Sampler

from vigc.data.samples import stable_seed

__all__ = ["ConcatSampler", "EpochIndexedDataset", "MixedDataset", "RatioMixer", "SampleKey"]

logger = logging.getLogger(__name__)

ItemT_co = TypeVar("ItemT_co", covariant=True)


@dataclass(frozen=True)
class SampleKey:
    """One sample of a mixed stream: which dataset, which record, and the epoch its randomness belongs to."""

    dataset: str
    index: int
    epoch: int


class EpochIndexedDataset(Protocol[ItemT_co]):
    """A dataset whose items are built from (index, epoch), like `vigc.data.datasets.QATrainDataset`."""

    def __len__(self) -> int: ...

    def item(self, index: int, epoch: int) -> ItemT_co: ...


class RatioDataset(Sized, Protocol):
    """A dataset that carries its mixing weight."""

    sample_ratio: float


class MixedDataset(Dataset[ItemT_co], Generic[ItemT_co]):
    """Map a `SampleKey` to the item of the dataset it names.

    Args:
        datasets: Name → dataset (the names the samplers use).
    """

    def __init__(self, datasets: Mapping[str, EpochIndexedDataset[ItemT_co]]) -> None:
        self.datasets = dict(datasets)

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets.values())

    def __getitem__(self, key: SampleKey) -> ItemT_co:  # type: ignore[override]
        return self.datasets[key.dataset].item(key.index, key.epoch)


class _Permutations:
    """Per-epoch shuffles of ``range(size)``, seeded by (seed, stream, epoch); the last few are cached."""

    def __init__(self, size: int, seed: int, stream: str, shuffle: bool, cache: int = 4) -> None:
        if size < 1:
            raise ValueError(f"Cannot draw samples from {stream!r}: it has no records.")
        self.size, self.seed, self.stream, self.shuffle = size, seed, stream, shuffle
        self._cache: OrderedDict[int, list[int]] = OrderedDict()
        self._cache_size = cache

    def __call__(self, epoch: int) -> list[int]:
        if epoch not in self._cache:
            order = list(range(self.size))
            if self.shuffle:
                random.Random(stable_seed(self.seed, "permutation", self.stream, epoch)).shuffle(order)
            self._cache[epoch] = order
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(epoch)
        return self._cache[epoch]

    def at(self, position: int) -> tuple[int, int]:
        """(record index, epoch) at a position of the endless stream."""
        epoch, offset = divmod(position, self.size)
        return self(epoch)[offset], epoch


def _check_split(batch_size: int, rank: int, world_size: int) -> None:
    if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"Need batch_size >= 1 and 0 <= rank < world_size; got {batch_size}, {rank}, {world_size}.")


class RatioMixer(Sampler[list[SampleKey]]):
    """Batches that each come from one dataset, drawn with probability proportional to its ratio.

    Args:
        sizes: Dataset name → number of records.
        ratios: Dataset name → weight (``sample_ratio``); same names as ``sizes``.
        batch_size: Samples per rank per step.
        seed: Seed of the dataset draws and the shuffles.
        rank: This process's rank.
        world_size: Number of ranks.
        shuffle: Shuffle each epoch of each dataset (False: record order, for debugging).
        start_step: First step `__iter__` yields (the number of batches already consumed when resuming).
        num_steps: Step at which `__iter__` stops (None: never).
    """

    def __init__(
        self,
        sizes: Mapping[str, int],
        ratios: Mapping[str, float],
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        start_step: int = 0,
        num_steps: int | None = None,
    ) -> None:
        _check_split(batch_size, rank, world_size)
        if set(sizes) != set(ratios) or not sizes:
            raise ValueError(f"sizes and ratios must name the same datasets; got {sorted(sizes)} / {sorted(ratios)}.")
        if any(r <= 0 for r in ratios.values()):
            raise ValueError(f"Every sample_ratio must be positive; got {dict(ratios)}.")
        # Sorted names: the draw must not depend on the order of a config's datasets section.
        self.names = sorted(sizes)
        self.sizes = {n: int(sizes[n]) for n in self.names}
        self.ratios = {n: float(ratios[n]) for n in self.names}
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.start_step, self.num_steps = start_step, num_steps
        self._streams = {n: _Permutations(self.sizes[n], seed, n, shuffle) for n in self.names}
        self._cumulative = list(itertools.accumulate(self.ratios[n] for n in self.names))
        self._draw_rng = random.Random(stable_seed(seed, "ratio-mixer"))
        self._drawn = array("H")  # dataset number of each step so far
        self._ordinal = array("q")  # how many earlier steps drew the same dataset
        self._counts = [0] * len(self.names)

    @classmethod
    def from_datasets(cls, datasets: Mapping[str, RatioDataset], batch_size: int, **kwargs: Any) -> RatioMixer:
        """Make a mixer from datasets that carry ``sample_ratio`` (like ``QATrainDataset``)."""
        sizes = {name: len(d) for name, d in datasets.items()}
        ratios = {name: d.sample_ratio for name, d in datasets.items()}
        return cls(sizes, ratios, batch_size, **kwargs)

    def _extend_to(self, step: int) -> None:
        """Draw the datasets of every step up to ``step`` (sequentially: the draw of a step needs the ones before)."""
        total = self._cumulative[-1]
        while len(self._drawn) <= step:
            number = bisect.bisect_right(self._cumulative, self._draw_rng.random() * total)
            number = min(number, len(self.names) - 1)
            self._drawn.append(number)
            self._ordinal.append(self._counts[number])
            self._counts[number] += 1

    def dataset_at(self, step: int) -> str:
        """The dataset every rank's batch ``step`` comes from."""
        self._extend_to(step)
        return self.names[self._drawn[step]]

    def batch_at(self, step: int) -> list[SampleKey]:
        """This rank's batch at ``step``.

        Args:
            step: Global step (0-based; one step = one batch on every rank).

        Returns:
            ``batch_size`` keys of one dataset, disjoint in stream position from every other rank's.
        """
        name = self.dataset_at(step)
        start = self._ordinal[step] * self.batch_size * self.world_size + self.rank * self.batch_size
        keys = []
        for position in range(start, start + self.batch_size):
            index, epoch = self._streams[name].at(position)
            keys.append(SampleKey(name, index, epoch))
        return keys

    def __iter__(self) -> Iterator[list[SampleKey]]:
        steps = itertools.count(self.start_step) if self.num_steps is None else range(self.start_step, self.num_steps)
        for step in steps:
            yield self.batch_at(step)

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("This RatioMixer is endless (num_steps=None); it has no length.")
        return max(self.num_steps - self.start_step, 0)

    def state_dict(self, step: int) -> dict[str, Any]:
        """What resuming at ``step`` (the number of batches the training loop consumed) needs."""
        return {
            "step": step,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "sizes": dict(self.sizes),
            "ratios": dict(self.ratios),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue at ``state["step"]``; warn when the mix differs from the saved one (batches will differ)."""
        current = self.state_dict(int(state["step"]))
        changed = [key for key in current if key != "step" and key in state and state[key] != current[key]]
        if changed:
            logger.warning(
                "Resuming the data mix at step %d with different %s than the checkpoint: the batches after the "
                "resume are not the ones the original run would have seen.",
                state["step"],
                ", ".join(changed),
            )
        self.start_step = int(state["step"])


class ConcatSampler(Sampler[list[SampleKey]]):
    """The datasets concatenated and shuffled together each epoch; the last batch of an epoch is filled up.

    ``steps_per_epoch`` = ceil(total / (batch_size * world_size)); positions past the end of an epoch wrap to
    its start (as ``DistributedSampler`` pads), so every rank gets full batches.

    Args:
        sizes: Dataset name → number of records.
        batch_size: Samples per rank per step.
        seed: Seed of the shuffles.
        rank: This process's rank.
        world_size: Number of ranks.
        shuffle: Shuffle each epoch.
        start_step: Global step to resume at; `__iter__` skips the steps of the current epoch before it.
    """

    def __init__(
        self,
        sizes: Mapping[str, int],
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        start_step: int = 0,
    ) -> None:
        _check_split(batch_size, rank, world_size)
        self.names = sorted(sizes)
        self.offsets = list(itertools.accumulate((int(sizes[n]) for n in self.names), initial=0))
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.start_step, self.epoch = start_step, 0
        self._permutations = _Permutations(self.offsets[-1], seed, "concat", shuffle)
        global_batch = batch_size * world_size
        self.steps_per_epoch = -(-self.offsets[-1] // global_batch)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch `__iter__` yields."""
        self.epoch = epoch

    def batch_at(self, step: int) -> list[SampleKey]:
        """This rank's batch at global ``step`` (epoch = step // steps_per_epoch)."""
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        order = self._permutations(epoch)
        start = (in_epoch * self.world_size + self.rank) * self.batch_size
        keys = []
        for position in range(start, start + self.batch_size):
            flat = order[position % len(order)]
            number = bisect.bisect_right(self.offsets, flat) - 1
            keys.append(SampleKey(self.names[number], flat - self.offsets[number], epoch))
        return keys

    def __iter__(self) -> Iterator[list[SampleKey]]:
        first = self.epoch * self.steps_per_epoch
        for step in range(max(first, self.start_step), first + self.steps_per_epoch):
            yield self.batch_at(step)

    def __len__(self) -> int:
        return self.steps_per_epoch
