"""Training batches: the epoch sampler splits the same global batches across any number of
processes, items are seeded by position (not by process or worker), and bad batches are refused."""

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from motionext.data import Cine
from motionext.data.batches import EpochBatchSampler, TrainingSet, collate, model_noise
from motionext.data.preprocess import resample_time


def _steps(sampler, count):
    return list(itertools.islice(iter(sampler), count))


def test_global_batches_do_not_depend_on_the_number_of_processes():
    size, steps = 11, 9  # 5 steps per epoch with a global batch of 2: crosses an epoch boundary
    one = _steps(EpochBatchSampler(size, 2, world=1, seed=4), steps)
    ranks = [_steps(EpochBatchSampler(size, 1, rank=r, world=2, seed=4), steps) for r in range(2)]
    for step in range(steps):
        assert sorted(one[step]) == sorted(ranks[0][step] + ranks[1][step])
    epochs = [sorted(i for batch in one[k:k + 5] for i, _ in batch) for k in (0, 5)]
    assert len(set(epochs[0])) == 10  # no sequence twice within an epoch
    assert [i for b in one[:4] for i, _ in b] != [i for b in one[5:9] for i, _ in b]  # reshuffled


def test_sampler_resumes_at_any_step_and_refuses_tiny_datasets():
    full = _steps(EpochBatchSampler(7, 2, seed=1), 12)
    assert _steps(EpochBatchSampler(7, 2, seed=1, start_step=5), 7) == full[5:]
    with pytest.raises(ValueError, match="fewer than the global batch"):
        EpochBatchSampler(3, 2, world=2)


def test_mixed_lengths_train_in_batches_of_one_length_on_any_number_of_processes():
    lengths = [2] * 9 + [20] * 5 + [12] * 3  # ED/ES pairs, whole cines, and a group smaller than a batch
    epoch = 10  # steps per epoch: 3 + 2 + 1 global batches of 4 (2 × 2)
    one = _steps(EpochBatchSampler(len(lengths), 4, seed=3, lengths=lengths), 2 * epoch)
    ranks = [_steps(EpochBatchSampler(len(lengths), 2, rank=r, world=2, seed=3, lengths=lengths), 2 * epoch)
             for r in range(2)]
    assert EpochBatchSampler(len(lengths), 4, lengths=lengths).steps_per_epoch == 6
    for step in range(12):
        assert len({lengths[i] for i, _ in one[step]}) == 1  # one length per batch
        assert sorted(one[step]) == sorted(ranks[0][step] + ranks[1][step])
    first = {i for batch in one[:6] for i, _ in batch}
    assert first == set(range(len(lengths)))  # every sequence trains in every epoch
    assert [[i for i, _ in b] for b in one[:6]] != [[i for i, _ in b] for b in one[6:12]]  # reshuffled
    assert len({lengths[b[0][0]] for b in one[:6]}) == 3
    resumed = _steps(EpochBatchSampler(len(lengths), 4, seed=3, lengths=lengths, start_step=4), 8)
    assert resumed == one[4:12]


def _sequences(lengths):
    rng = np.random.default_rng(0)
    return [Cine(rng.random((t, 16, 16)).astype(np.float32), (1.5, 1.5), name=f"s{i}") for i, t in enumerate(lengths)]


def test_items_are_the_same_with_or_without_loader_workers():
    dataset = TrainingSet(_sequences([6, 6, 6, 6]), augment=True)
    sampler = EpochBatchSampler(4, 2, seed=0)
    batches = [list(itertools.islice(iter(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                                      num_workers=w)), 3)) for w in (0, 2)]
    for a, b in zip(*batches):
        torch.testing.assert_close(a["frames"], b["frames"], rtol=0, atol=0)
        assert torch.equal(a["seeds"], b["seeds"])
    assert not torch.equal(batches[0][0]["frames"][0], torch.from_numpy(dataset.sequences[0].frames))  # augmented
    noise = model_noise(batches[0][0]["seeds"], 6, 4, 0.5, "cpu")
    again = model_noise(batches[0][0]["seeds"][:1], 6, 4, 0.5, "cpu")
    torch.testing.assert_close(noise["posterior_noise"][:1], again["posterior_noise"])  # per sequence, not per batch
    assert noise["tds_mask"].dtype == torch.bool and noise["prior_noise"].shape == (2, 6, 4)


def test_mixed_lengths_need_resampling():
    sequences = _sequences([5, 8])
    with pytest.raises(ValueError, match="--frames"):
        collate([TrainingSet(sequences, augment=False)[(i, 0)] for i in range(2)])
    items = [TrainingSet(sequences, num_frames=10, augment=False)[(i, 0)] for i in range(2)]
    assert collate(items)["frames"].shape == (2, 10, 16, 16)


def test_resample_time_interpolates_the_cycle():
    frames = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)  # values 0, 1, 2, 3
    out = resample_time(frames, 8)
    np.testing.assert_allclose(out[:, 0, 0], [0, 0.5, 1, 1.5, 2, 2.5, 3, 1.5])  # the last wraps to ED
    np.testing.assert_array_equal(resample_time(frames, 4), frames)
    np.testing.assert_allclose(resample_time(frames, 2)[:, 0, 0], [0, 2])
    with pytest.raises(ValueError, match="at least 2"):
        resample_time(frames, 1)
