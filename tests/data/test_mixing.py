"""Dataset mixing: ratio draws, reproducibility, resume at a step, disjoint ranks, concatenation."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from dataclasses import dataclass

import pytest
from torch.utils.data import DataLoader

from vigc.data.mixing import ConcatSampler, MixedDataset, RatioMixer, SampleKey

LLAVA_SIZES = {"comp_vig": 300, "desc_vig": 100, "conv_vig": 500, "comp_vic": 300}
LLAVA_RATIOS = {"comp_vig": 277, "desc_vig": 152, "conv_vig": 507, "comp_vic": 277}


def batches(sampler: RatioMixer | ConcatSampler, steps: range) -> list[list[SampleKey]]:
    return [sampler.batch_at(step) for step in steps]


def test_ratio_mixer_is_reproducible_and_seeded() -> None:
    first = RatioMixer(LLAVA_SIZES, LLAVA_RATIOS, 8, seed=42)
    again = RatioMixer(dict(reversed(LLAVA_SIZES.items())), LLAVA_RATIOS, 8, seed=42)  # config order is irrelevant
    assert batches(first, range(200)) == batches(again, range(200))
    other = RatioMixer(LLAVA_SIZES, LLAVA_RATIOS, 8, seed=43)
    assert batches(other, range(200)) != batches(first, range(200))


def test_each_batch_comes_from_one_dataset_with_ratio_probability() -> None:
    mixer = RatioMixer(LLAVA_SIZES, LLAVA_RATIOS, 2, seed=0)
    steps = 30000
    draws = Counter(mixer.dataset_at(step) for step in range(steps))
    total = sum(LLAVA_RATIOS.values())
    for name, ratio in LLAVA_RATIOS.items():
        assert draws[name] / steps == pytest.approx(ratio / total, abs=0.01)
    for step in range(50):
        assert len({key.dataset for key in mixer.batch_at(step)}) == 1


def test_resume_at_step_gives_the_same_batches() -> None:
    run = RatioMixer(LLAVA_SIZES, LLAVA_RATIOS, 4, seed=42)
    uninterrupted = list(itertools.islice(iter(run), 120))
    state = run.state_dict(step=77)
    resumed = RatioMixer(LLAVA_SIZES, LLAVA_RATIOS, 4, seed=42)
    resumed.load_state_dict(state)
    assert list(itertools.islice(iter(resumed), 43)) == uninterrupted[77:]
    direct = RatioMixer(LLAVA_SIZES, LLAVA_RATIOS, 4, seed=42, start_step=77, num_steps=120)
    assert len(direct) == 43 and list(direct) == uninterrupted[77:]


def test_resume_with_a_different_mix_warns(caplog: pytest.LogCaptureFixture) -> None:
    state = RatioMixer(LLAVA_SIZES, LLAVA_RATIOS, 4, seed=42).state_dict(step=10)
    changed = RatioMixer(LLAVA_SIZES, LLAVA_RATIOS, 4, seed=42, world_size=2)
    with caplog.at_level(logging.WARNING):
        changed.load_state_dict(state)
    assert "different world_size" in caplog.text and changed.start_step == 10


def test_ranks_get_disjoint_samples_of_the_same_dataset() -> None:
    world_size, batch_size = 4, 8
    ranks = [RatioMixer(LLAVA_SIZES, LLAVA_RATIOS, batch_size, seed=1, rank=r, world_size=world_size) for r in range(4)]
    seen: dict[str, Counter[tuple[int, int]]] = {name: Counter() for name in LLAVA_SIZES}
    for step in range(400):
        step_batches = [mixer.batch_at(step) for mixer in ranks]
        assert len({key.dataset for batch in step_batches for key in batch}) == 1
        for key in (key for batch in step_batches for key in batch):
            seen[key.dataset][(key.index, key.epoch)] += 1
    for name, counts in seen.items():
        assert max(counts.values()) == 1  # no record twice in one epoch, across all ranks and steps
        first_epoch = {index for index, epoch in counts if epoch == 0}
        if any(epoch == 1 for _, epoch in counts):
            assert first_epoch == set(range(LLAVA_SIZES[name]))  # a finished epoch saw every record


def test_tiny_datasets_are_fine() -> None:
    mixer = RatioMixer({"one": 1, "two": 2}, {"one": 1, "two": 1}, 3, seed=0)
    keys = [key for batch in batches(mixer, range(20)) for key in batch]
    assert {(k.dataset, k.index) for k in keys} == {("one", 0), ("two", 0), ("two", 1)}


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="same datasets"):
        RatioMixer({"a": 1}, {"b": 1}, 2)
    with pytest.raises(ValueError, match="positive"):
        RatioMixer({"a": 1}, {"a": 0}, 2)
    with pytest.raises(ValueError, match="rank"):
        RatioMixer({"a": 1}, {"a": 1}, 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="no records"):
        RatioMixer({"a": 0}, {"a": 1}, 2)
    with pytest.raises(TypeError, match="endless"):
        len(RatioMixer({"a": 1}, {"a": 1}, 2))


def test_concat_sampler_covers_every_record_each_epoch() -> None:
    sizes = {"a": 10, "b": 14}
    ranks = [ConcatSampler(sizes, 3, seed=5, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].steps_per_epoch == len(ranks[0]) == 4
    for epoch in range(3):
        keys = []
        for mixer in ranks:
            mixer.set_epoch(epoch)
            keys += [key for batch in mixer for key in batch]
        assert sorted((k.dataset, k.index) for k in keys) == sorted(
            [("a", i) for i in range(10)] + [("b", i) for i in range(14)]
        )
        assert {k.epoch for k in keys} == {epoch}
    assert ranks[0].batch_at(0) != ranks[0].batch_at(4)  # reshuffled each epoch


def test_concat_sampler_pads_the_last_batch_and_resumes() -> None:
    sampler = ConcatSampler({"a": 5}, 2, seed=0, world_size=2)
    assert sampler.steps_per_epoch == 2
    epoch_keys = [
        k
        for step in range(2)
        for r in range(2)
        for k in ConcatSampler({"a": 5}, 2, rank=r, world_size=2).batch_at(step)
    ]
    assert len(epoch_keys) == 8 and {k.index for k in epoch_keys} == set(range(5))
    full = ConcatSampler({"a": 7, "b": 3}, 2, seed=1)
    full.set_epoch(1)
    all_of_epoch_1 = list(full)
    resumed = ConcatSampler({"a": 7, "b": 3}, 2, seed=1, start_step=full.steps_per_epoch + 2)
    resumed.set_epoch(1)
    assert list(resumed) == all_of_epoch_1[2:]


@dataclass
class Echo:
    """A dataset that returns what it was asked for."""

    size: int
    sample_ratio: float = 1.0

    def __len__(self) -> int:
        return self.size

    def item(self, index: int, epoch: int) -> tuple[int, int]:
        return index, epoch


def test_mixed_dataset_in_a_dataloader_with_workers() -> None:
    datasets = {"a": Echo(5, 3.0), "b": Echo(7, 1.0)}
    mixer = RatioMixer.from_datasets(datasets, 4, seed=9, num_steps=6)
    loader = DataLoader(MixedDataset(datasets), batch_sampler=mixer, num_workers=2, collate_fn=list)
    got = list(loader)
    assert got == [[(k.index, k.epoch) for k in mixer.batch_at(step)] for step in range(6)]
    assert len(MixedDataset(datasets)) == 12
