"""Task windows, the single-task batch sampler and the collator (no Trainer, no model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jat_policy.trainers.sampling import (
    MultiTaskDataset,
    TaskBatchCollator,
    TaskBatchSampler,
    TaskWindows,
    build_task_windows,
)


def _continuous(lengths: list[int], obs: int = 5, act: int = 2, seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    return {
        "continuous_observations": [rng.normal(size=(t, obs)).astype(np.float32).tolist() for t in lengths],
        "continuous_actions": [rng.normal(size=(t, act)).astype(np.float32).tolist() for t in lengths],
        "rewards": [np.arange(1, t + 1, dtype=np.float32).tolist() for t in lengths],
    }


def _babyai(lengths: list[int]) -> dict[str, list]:
    missions = ["go to the red ball", "pick up the blue key"]
    return {
        "text_observations": [[missions[i % 2]] * t for i, t in enumerate(lengths)],
        "discrete_observations": [np.full((t, 148), i % 11).tolist() for i, t in enumerate(lengths)],
        "discrete_actions": [[i % 7] * t for i, t in enumerate(lengths)],
        "rewards": [[0.0] * (t - 1) + [0.9] for t in lengths],
    }


# ----------------------------------------------------------------------------------------------- windows
def test_windows_preserve_chunks_and_shift_rewards_per_episode(processor):
    windows = build_task_windows(_continuous([10, 4, 0]), processor, window=4, name="cont")
    # 10 -> 4 + 4 + 2, 4 -> 4; the empty episode is dropped
    assert np.diff(windows.offsets).tolist() == [4, 4, 2, 4]
    rewards = windows.steps["rewards"]
    assert rewards[:10].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # shifted across window boundaries
    assert rewards[10:].tolist() == [0, 1, 2, 3]
    assert windows.steps["continuous_observations"].shape == (14, 5)
    assert windows.kind == "rl" and len(windows) == 4 and windows.num_steps == 14


def test_windows_merge_missions_into_int32_discrete_observations(processor):
    windows = build_task_windows(_babyai([3, 5]), processor, window=256)
    obs = windows.steps["discrete_observations"]
    assert obs.shape == (8, 148 + 64) and obs.dtype == np.int32
    expected = processor(text_observations=[["go to the red ball"]], discrete_observations=[np.zeros((1, 148))])
    assert obs[0, 148:].tolist() == expected["discrete_observations"][0][0, 148:].tolist()


def test_windows_keep_frames_uint8_and_collate_like_the_processor(processor):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (t, 84, 84, 4), dtype=np.uint8) for t in (5, 3)]
    data = {"image_observations": frames, "discrete_actions": [[1] * 5, [2] * 3], "rewards": [[0.0] * 5, [1.0] * 3]}
    windows = build_task_windows(data, processor, window=4)
    assert windows.steps["image_observations"].dtype == np.uint8
    batch = TaskBatchCollator(processor, [windows])([{"task": 0, **windows.window(i)} for i in range(3)])
    direct = processor(**data, truncation="preserve", padding="longest", max_steps=4, return_tensors="pt")
    assert torch.equal(batch["image_observations"][:, :1], direct["image_observations"][:, :1])
    torch.testing.assert_close(
        batch["image_observations"] * batch["attention_mask"][..., None, None, None],
        direct["image_observations"] * direct["attention_mask"][..., None, None, None],
    )


def test_text_windows(processor):
    windows = build_task_windows({"text": ["go to the red ball " * 20, "hi", ""]}, processor, window=16)
    assert windows.kind == "text"
    assert max(np.diff(windows.offsets)) == 16 and len(windows) >= 3
    batch = TaskBatchCollator(processor, [windows])([{"task": 0, **windows.window(i)} for i in range(len(windows))])
    assert set(batch) == {"input_ids", "attention_mask", "return_loss"}  # no loss_weight for text


def test_windows_reject_non_episode_columns(processor):
    with pytest.raises(ValueError, match="neither Hub-schema episodes"):
        build_task_windows({"foo": [[1, 2]]}, processor, window=4)


# ----------------------------------------------------------------------------------------------- sampler
def test_sampler_batches_are_single_task():
    dataset_offsets = np.array([0, 7, 10])
    sampler = TaskBatchSampler([7, 3], [1.0, 1.0], batch_size=4, num_batches=50, seed=1)
    for batch in sampler:
        tasks = {int(np.searchsorted(dataset_offsets, i, side="right") - 1) for i in batch}
        assert len(batch) == 4 and len(tasks) == 1


def test_sampler_follows_weights():
    sampler = TaskBatchSampler([5, 5], [3.0, 1.0], batch_size=1, num_batches=4000, seed=0)
    share = np.mean([task == 0 for task, _ in sampler.global_batches()])
    assert abs(share - 0.75) < 0.03


def test_sampler_is_deterministic_and_prefix_stable():
    make = lambda n, seed=0: list(TaskBatchSampler([6, 4], [1.0, 2.0], batch_size=3, num_batches=n, seed=seed))  # noqa: E731
    assert make(20) == make(20)
    assert make(20)[:8] == make(8)  # the order does not depend on the run length
    assert make(20) != make(20, seed=1)


def test_sampler_ranks_split_the_global_batch():
    single = list(TaskBatchSampler([9, 4], [1.0, 1.0], batch_size=4, num_batches=12, seed=3))
    ranks = [list(TaskBatchSampler([9, 4], [1.0, 1.0], 2, 12, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks, strict=True)] == single


def test_sampler_cycles_through_every_window_before_repeating():
    seen = [i for batch in TaskBatchSampler([10], [1.0], batch_size=5, num_batches=2, seed=0) for i in batch]
    assert sorted(seen) == list(range(10))


def test_sampler_grouped_by_length_sees_the_same_windows_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = [rng.geometric(0.2, size=500), rng.geometric(0.1, size=300)]  # BabyAI-like: mostly short, a long tail
    make = lambda grouped, **kw: list(  # noqa: E731
        TaskBatchSampler([500, 300], [1.0, 1.0], 8, 64, seed=2, task_lengths=lengths if grouped else None, **kw)
    )
    plain, grouped = make(False), make(True, group_batches=4)
    flat = np.concatenate(lengths)  # window lengths in dataset order

    def padded(batches):
        return sum(len(b) * flat[b].max() for b in batches)

    # every 4 draws of a task hold the same windows as the 4 ungrouped draws, only regrouped
    for first_task in (True, False):  # windows 0..499 are task 0's
        mine = [b for b in plain if (b[0] < 500) == first_task]
        theirs = [b for b in grouped if (b[0] < 500) == first_task]
        assert len(mine) == len(theirs) and len(mine) >= 8
        for i in range(0, len(mine) // 4 * 4, 4):
            assert sorted(sum(mine[i : i + 4], [])) == sorted(sum(theirs[i : i + 4], []))
    assert padded(grouped) < 0.7 * padded(plain)
    assert make(True)[:10] == make(True)[:10] and make(True) != make(False)
    ranks = [
        list(TaskBatchSampler([500, 300], [1.0, 1.0], 4, 64, seed=2, rank=r, world_size=2, task_lengths=lengths))
        for r in (0, 1)
    ]
    assert [a + b for a, b in zip(*ranks, strict=True)] == make(True)  # ranks still split the global batch


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="one weight per task"):
        TaskBatchSampler([3, 3], [1.0], 2, 4)
    with pytest.raises(ValueError, match="at least one window"):
        TaskBatchSampler([3, 0], [1.0, 1.0], 2, 4)
    with pytest.raises(ValueError, match="positive sum"):
        TaskBatchSampler([3], [0.0], 2, 4)
    with pytest.raises(ValueError, match="one length per window"):
        TaskBatchSampler([3, 2], [1.0, 1.0], 2, 4, task_lengths=[[1, 2, 3], [4]])
    with pytest.raises(ValueError, match="group_batches must be >= 1"):
        TaskBatchSampler([3], [1.0], 2, 4, task_lengths=[[1, 2, 3]], group_batches=0)


# ----------------------------------------------------------------------------------------------- dataset + collator
def test_dataset_and_collator_pad_single_task_batches(processor):
    cont = build_task_windows(_continuous([3, 6]), processor, window=8, name="a", loss_weight=50.0)
    baby = build_task_windows(_babyai([2]), processor, window=8, name="b")
    dataset = MultiTaskDataset([cont, baby])
    assert len(dataset) == 3 and dataset.task_sizes == [2, 1] and dataset.locate(2) == (1, 0)
    collate = TaskBatchCollator(processor, [cont, baby])
    batch = collate([dataset[0], dataset[1]])
    assert batch["continuous_observations"].shape == (2, 6, 5)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6]
    assert batch["loss_weight"].tolist()[0] == [50.0] * 3 + [0.0] * 3
    assert batch["rewards"].dtype == torch.float32 and batch["return_loss"] is True
    discrete = collate([dataset[2]])
    assert discrete["discrete_observations"].dtype == torch.int64 and discrete["discrete_actions"].dtype == torch.int64
    with pytest.raises(ValueError, match="mixes tasks"):
        collate([dataset[0], dataset[2]])


def test_task_windows_reject_empty_tasks(processor):
    with pytest.raises(ValueError, match="no usable episodes"):
        build_task_windows(_continuous([0]), processor, window=4, name="empty")
    assert isinstance(build_task_windows(_continuous([2]), processor, window=4), TaskWindows)


def test_an_augment_adds_its_episodes_after_each_batch(processor):
    from jat_policy.wrappers.babyai import mirror_episodes

    data = _babyai([3, 5])
    data["discrete_actions"] = [[0, 1, 2], [1, 1, 0, 2, 6]]
    plain = build_task_windows(data, processor, window=256)
    windows = build_task_windows(data, processor, window=256, augment=mirror_episodes)
    assert np.diff(windows.offsets).tolist() == [3, 5, 3, 5]  # the originals, then their mirror images
    actions = windows.steps["discrete_actions"]
    assert actions[:8].tolist() == plain.steps["discrete_actions"].tolist()
    assert actions[8:].tolist() == [1, 0, 2, 0, 0, 1, 2, 6]  # left <-> right
    assert len(build_task_windows(data, processor, window=256, max_episodes=1, augment=mirror_episodes)) == 2
