"""Unit tests for jat_policy.processing: reward shift, chunking, padding, truncation, missions, images, tokenizer."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from jat_policy.processing import (
    BABYAI_VOCABULARY,
    CLIP_MEAN,
    CLIP_STD,
    EOS_TOKEN,
    MISSION_LENGTH,
    PROCESSOR_CONFIG_NAME,
    JatProcessor,
    build_default_tokenizer,
)


def _continuous_episode(steps: int, obs_dim: int = 3, act_dim: int = 2) -> dict[str, np.ndarray]:
    t = np.arange(steps, dtype=np.float32)
    return {
        "continuous_observations": np.stack([t + 0.5 * i for i in range(obs_dim)], axis=1),  # (T, n)
        "continuous_actions": np.stack([-t - i for i in range(act_dim)], axis=1),  # (T, k)
        "rewards": t + 1.0,  # raw: rewards[t] follows actions[t]
    }


def _batch(*episodes: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    return {key: [episode[key] for episode in episodes] for key in episodes[0]}


# ------------------------------------------------------------------------------------------- rewards, chunking


def test_rewards_are_shifted_per_episode(processor):
    out = processor(rewards=[[1.0, 2.0, 3.0], [5.0, 6.0]], padding="longest", return_tensors="pt")
    assert out["rewards"].dtype == torch.float32
    assert out["rewards"][0].tolist() == [0.0, 1.0, 2.0]
    assert out["rewards"][1, :2].tolist() == [0.0, 5.0]
    unshifted = processor(rewards=[[1.0, 2.0, 3.0]], shift_rewards=False, return_tensors="pt")
    assert unshifted["rewards"][0].tolist() == [1.0, 2.0, 3.0]


def test_preserve_chunks_a_1000_step_episode_into_consecutive_rows(processor):
    episode = _continuous_episode(1000)
    out = processor(**_batch(episode), truncation="preserve", padding="max_length", return_tensors="pt")
    obs, mask, rewards = out["continuous_observations"], out["attention_mask"], out["rewards"]
    assert obs.shape == (4, 256, 3) and obs.dtype == torch.float32
    assert out["continuous_actions"].shape == (4, 256, 2)
    assert mask.dtype == torch.int64 and mask.sum(dim=1).tolist() == [256, 256, 256, 232]
    assert mask[3, :232].all() and not mask[3, 232:].any()
    real_steps = obs[mask.bool()][:, 0]  # the rows, unpadded and concatenated, are the episode in order
    assert real_steps.tolist() == list(range(1000))
    # reward continuity: the first chunk starts with 0, later chunks with the real previous reward
    assert rewards[:, 0].tolist() == [0.0, 256.0, 512.0, 768.0]
    assert rewards[mask.bool()].tolist() == [0.0, *range(1, 1000)]
    # padding repeats the row's own first step
    assert torch.equal(obs[3, 232:], obs[3, :1].expand(24, 3))
    assert (rewards[3, 232:] == rewards[3, 0]).all()


def test_max_length_counts_tokens_and_max_steps_timesteps(processor):
    episode = _batch(_continuous_episode(600))
    assert processor(**episode, truncation=True, return_tensors="pt")["rewards"].shape == (1, 256)  # 512 tokens
    assert processor(**episode, truncation=True, max_length=20, return_tensors="pt")["rewards"].shape == (1, 10)
    out = processor(**episode, truncation=True, max_length=20, max_steps=7, return_tensors="pt")
    assert out["rewards"].shape == (1, 7)
    small = JatProcessor(tokenizer=processor.tokenizer, model_max_length=64)
    assert small(**episode, truncation=True, return_tensors="pt")["rewards"].shape == (1, 32)


def test_lossy_truncation_keeps_the_chosen_side(processor):
    episode = _batch(_continuous_episode(10))
    right = processor(**episode, truncation=True, max_steps=4, return_tensors="pt")
    left = processor(**episode, truncation="lossy", truncation_side="left", max_steps=4, return_tensors="pt")
    assert right["continuous_observations"][0, :, 0].tolist() == [0, 1, 2, 3]
    assert left["continuous_observations"][0, :, 0].tolist() == [6, 7, 8, 9]
    assert left["rewards"][0].tolist() == [6.0, 7.0, 8.0, 9.0]  # shifted before truncation


def test_left_preserve_chunks_from_the_end(processor):
    out = processor(
        **_batch(_continuous_episode(10)),
        truncation="preserve",
        truncation_side="left",
        padding="max_length",
        max_steps=4,
        return_tensors="pt",
    )
    first = out["continuous_observations"][..., 0]
    assert out["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    assert first.tolist() == [[0, 1, 0, 0], [2, 3, 4, 5], [6, 7, 8, 9]]


def test_padding_longest_copies_the_first_element_and_masks(processor):
    out = processor(
        discrete_actions=[[4, 5, 6], [7]],
        rewards=[[1.0, 1.0, 1.0], [2.0]],
        padding=True,
        shift_rewards=False,
        return_tensors="pt",
    )
    assert out["discrete_actions"].dtype == torch.int64
    assert out["discrete_actions"].tolist() == [[4, 5, 6], [7, 7, 7]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_given_attention_mask_is_anded_with_padding(processor):
    out = processor(
        discrete_actions=[[1, 2, 3], [4, 5]],
        attention_mask=[[1, 0, 1], [1, 1]],
        padding="max_length",
        max_steps=4,
        return_tensors="pt",
    )
    assert out["attention_mask"].tolist() == [[1, 0, 1, 0], [1, 1, 0, 0]]


def test_return_formats(processor):
    ragged = processor(discrete_actions=[[1, 2, 3], [4]])
    assert [row.tolist() for row in ragged["discrete_actions"]] == [[1, 2, 3], [4]]
    assert [row.tolist() for row in ragged["attention_mask"]] == [[1, 1, 1], [1]]
    stacked = processor(discrete_actions=[[1, 2], [3, 4]], return_tensors="np")
    assert isinstance(stacked["discrete_actions"], np.ndarray) and stacked["discrete_actions"].shape == (2, 2)
    with pytest.raises(ValueError, match="padding='longest'"):
        processor(discrete_actions=[[1, 2, 3], [4]], return_tensors="pt")


# ------------------------------------------------------------------------------------------- BabyAI


def test_discrete_observations_with_missions_have_212_slots(processor):
    grid = np.arange(5 * 148).reshape(5, 148) % 11
    mission = "go to the red ball"
    as_bytes = np.zeros((5, 256), np.uint8)  # the wrappers' text_as_bytes form
    as_bytes[:, : len(mission)] = np.frombuffer(mission.encode(), np.uint8)
    for missions in ([mission] * 5, list(as_bytes)):
        out = processor(discrete_observations=[grid], text_observations=[missions], return_tensors="pt")
        obs = out["discrete_observations"]
        assert obs.shape == (1, 5, 148 + MISSION_LENGTH) and obs.dtype == torch.int64
        assert torch.equal(obs[0, :, :148], torch.from_numpy(grid))
        ids = processor.tokenizer(mission, add_special_tokens=False)["input_ids"]
        assert len(ids) == 5  # one token per BabyAI word
        assert obs[0, 0, 148 : 148 + 5].tolist() == ids
        assert (obs[0, :, 148 + 5 :] == processor.pad_token_id).all()


def test_long_mission_is_truncated_to_64_tokens(processor):
    mission = ", then ".join(["put the red box in front of you next to the green key behind you"] * 8)
    assert len(processor.tokenizer(mission, add_special_tokens=False)["input_ids"]) > MISSION_LENGTH
    out = processor(
        discrete_observations=[np.zeros((2, 148), np.int64)], text_observations=[[mission] * 2], return_tensors="pt"
    )
    assert out["discrete_observations"].shape == (1, 2, 212)
    assert processor.tokenize_missions([mission, "open the door"]).shape == (2, MISSION_LENGTH)


def test_discrete_observations_without_text_pass_through(processor):
    grid = np.random.default_rng(0).integers(0, 10, (3, 148))
    out = processor(discrete_observations=[grid], discrete_actions=[[0, 1, 2]], return_tensors="pt")
    assert out["discrete_observations"].shape == (1, 3, 148)
    assert torch.equal(out["discrete_observations"][0], torch.from_numpy(grid))


# ------------------------------------------------------------------------------------------- images


def test_atari_frames_become_channel_first_floats_in_minus_one_one(processor):
    frames = np.zeros((3, 84, 84, 4), np.uint8)  # (T, H, W, C), oldest frame in channel 0
    for channel in range(4):
        frames[..., channel] = 85 * channel  # 0, 85, 170, 255
    out = processor(image_observations=[frames], discrete_actions=[[0, 1, 2]], return_tensors="pt")
    images = out["image_observations"]
    assert images.shape == (1, 3, 4, 84, 84) and images.dtype == torch.float32
    expected = torch.tensor([0, 85, 170, 255], dtype=torch.float32) / 127.5 - 1.0
    assert torch.allclose(images[0, :, :, 5, 7], expected.expand(3, 4), atol=1e-6)
    assert images.min() == -1.0 and images.max() == 1.0
    # the Hub's RGBA PNGs, channel-first frames and [0, 1] floats give the same tensor
    pil = [Image.fromarray(frame, mode="RGBA") for frame in frames]
    for same in (pil, frames.transpose(0, 3, 1, 2), frames.astype(np.float32) / 255.0):
        other = processor(image_observations=[same], discrete_actions=[[0, 1, 2]], return_tensors="pt")
        assert torch.allclose(other["image_observations"], images, atol=1e-6)


def test_bad_frames_raise_helpful_errors(processor):
    with pytest.raises(ValueError, match="4 stacked grayscale frames"):
        processor(image_observations=[np.zeros((2, 84, 84, 3), np.uint8)])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        processor(image_observations=[np.full((2, 84, 84, 4), 200.0, np.float32)])
    with pytest.raises(ValueError, match="image_observations=\\[episode\\]"):
        processor(image_observations=np.zeros((84, 84, 4), np.uint8))


def test_pixel_values_follow_clip_preprocessing(processor):
    red = Image.new("RGB", (352, 200), (255, 0, 0))
    out = processor(images=[red, np.zeros((100, 60, 3), np.uint8)], return_tensors="pt")
    pixels = out["pixel_values"]
    assert pixels.shape == (2, 3, 224, 224) and pixels.dtype == torch.float32
    expected = (torch.tensor([1.0, 0.0, 0.0]) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(pixels[0, :, 100, 100], expected, atol=1e-5)
    assert torch.allclose(pixels[1, :, 3, 3], -torch.tensor(CLIP_MEAN) / torch.tensor(CLIP_STD), atol=1e-5)


@pytest.mark.slow  # importing transformers' image processors takes ~5 s; the match was exact (max diff 0.0)
def test_pixel_values_match_transformers_clip_processor(processor):
    transformers = pytest.importorskip("transformers")
    reference = getattr(transformers, "CLIPImageProcessorPil", None)
    if reference is None:
        pytest.skip("no PIL CLIP image processor in this transformers")
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (120, 200, 3), dtype=np.uint8))
    expected = reference()(images=image, return_tensors="np")["pixel_values"]
    assert np.allclose(processor(images=image, return_tensors="np")["pixel_values"], expected, atol=1e-5)


# ------------------------------------------------------------------------------------------- text


def test_text_truncation_padding_and_preserve(processor):
    text = "go to the red ball and open the blue door"  # 10 tokens
    out = processor(text=[text, "go"], padding="longest", return_tensors="pt")
    assert out["input_ids"].shape == (2, 10)
    assert out["input_ids"][1, 1:].eq(processor.pad_token_id).all()
    assert out["attention_mask"][1].tolist() == [1] + [0] * 9
    assert processor.decode(out["input_ids"][0]) == text
    chunks = processor(text=text, truncation="preserve", padding="max_length", max_length=4, return_tensors="pt")
    assert chunks["input_ids"].shape == (3, 4)
    assert chunks["attention_mask"].sum(1).tolist() == [4, 4, 2]
    assert processor.batch_decode(chunks["input_ids"][:2]) == ["go to the red", " ball and open the"]


def test_text_next_to_an_image_leaves_room_for_the_patches(processor):
    image = np.zeros((50, 50, 3), np.uint8)
    words = " ".join(["ball"] * 400)
    out = processor(text=[words], images=[image], truncation="preserve", return_tensors="pt", padding=True)
    assert processor.num_patches == 196
    assert out["input_ids"].shape == (2, 512 - 196)
    assert out["pixel_values"].shape == (2, 3, 224, 224)  # each chunk keeps its image


# ------------------------------------------------------------------------------------------- collation


def test_pad_collates_processed_rows(processor):
    rows = [
        {"discrete_actions": [1, 2, 3], "rewards": [0.0, 1.0, 1.0], "loss_weight": [1.0, 1.0, 1.0]},
        {"discrete_actions": [4], "rewards": [0.0], "loss_weight": [1.0]},
    ]
    batch = processor.pad(rows)
    assert batch["discrete_actions"].tolist() == [[1, 2, 3], [4, 4, 4]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["loss_weight"].dtype == torch.float32
    frames = np.full((2, 84, 84, 4), 255, np.uint8)
    images = processor.pad([{"image_observations": frames, "pixel_values": np.zeros((3, 224, 224))}] * 2)
    assert images["image_observations"].shape == (2, 2, 4, 84, 84) and (images["image_observations"] == 1).all()
    assert images["pixel_values"].shape == (2, 3, 224, 224)
    processed = processor(image_observations=[frames], return_tensors="np")
    again = processor.pad([{"image_observations": processed["image_observations"][0]}])
    assert (again["image_observations"] == 1).all()  # already-processed floats are not rescaled


# ------------------------------------------------------------------------------------------- tokenizer


def test_default_tokenizer_is_small_deterministic_and_byte_complete():
    first, second = build_default_tokenizer(), build_default_tokenizer()
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    assert len(first) <= 512
    assert first.eos_token == first.pad_token == EOS_TOKEN and first.pad_token_id == len(first) - 1
    for word in BABYAI_VOCABULARY:
        assert len(first(word, add_special_tokens=False)["input_ids"]) == 1, word
        assert len(first(" " + word, add_special_tokens=False)["input_ids"]) == 1, word
    text = "Zoë's café — 42 ✓\nnew line"
    ids = first(text, add_special_tokens=False)["input_ids"]
    assert ids == second(text, add_special_tokens=False)["input_ids"]
    assert first.decode(ids) == text


def test_save_and_load_round_trip(processor, tmp_path):
    custom = JatProcessor(tokenizer=processor.tokenizer, model_max_length=128, patch_size=32)
    custom.save_pretrained(tmp_path)
    assert json.loads((tmp_path / PROCESSOR_CONFIG_NAME).read_text())["model_max_length"] == 128
    loaded = JatProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == custom.to_dict()
    assert loaded.vocab_size == custom.vocab_size and loaded.pad_token_id == custom.pad_token_id
    for text in ["pick up the grey key behind you, then open a door", "Ünïcödé ✓ text"]:
        assert loaded.tokenizer(text)["input_ids"] == custom.tokenizer(text)["input_ids"]
    assert loaded.tokenizer.backend_tokenizer.to_str() == custom.tokenizer.backend_tokenizer.to_str()


def test_from_pretrained_fails_fast_offline(tmp_path):
    with pytest.raises(OSError, match="JatProcessor\\(\\)"):
        JatProcessor.from_pretrained("jat-project/this-repo-does-not-exist")
    with pytest.raises(OSError, match="directory"):
        JatProcessor.from_pretrained(tmp_path)  # an empty directory


def test_from_config_reads_the_model_sizes(processor):
    config = SimpleNamespace(max_position_embeddings=40, image_size=224, patch_size=16)
    small = JatProcessor.from_config(config, tokenizer=processor.tokenizer)
    assert small.model_max_length == 40
    out = small(discrete_actions=[list(range(50))], truncation=True, return_tensors="pt")
    assert out["attention_mask"].shape == (1, 20)


# ------------------------------------------------------------------------------------------- errors


def test_clear_errors_on_bad_inputs(processor):
    with pytest.raises(ValueError, match="episode 0: rewards has 2 steps but continuous_observations has 3"):
        processor(continuous_observations=[np.zeros((3, 4))], rewards=[[1.0, 2.0]])
    with pytest.raises(ValueError, match="different numbers of episodes"):
        processor(discrete_actions=[[1], [2]], rewards=[[1.0]])
    with pytest.raises(ValueError, match=r"continuous_observations\[0\] has shape \(4,\), expected \(T, n\)"):
        processor(continuous_observations=np.zeros((3, 4)))  # one episode, not wrapped in a list
    with pytest.raises(ValueError, match="text_observations need discrete_observations"):
        processor(text_observations=[["go to the red ball"]], discrete_actions=[[1]])
    with pytest.raises(TypeError, match="one mission per step"):
        processor(text_observations=["go to the red ball"], discrete_observations=[np.zeros((1, 148))])
    with pytest.raises(ValueError, match="truncation"):
        processor(discrete_actions=[list(range(10))], padding="max_length", max_steps=4)
    with pytest.raises(ValueError, match="padding must be"):
        processor(discrete_actions=[[1]], padding="left")
    with pytest.raises(ValueError, match="no steps"):
        processor(discrete_actions=[[]])
    with pytest.raises(ValueError, match="one kind per call"):
        processor(text="hi", discrete_actions=[[1]])
    with pytest.raises(ValueError, match="episode 1 has steps of shape"):
        processor(continuous_observations=[np.zeros((2, 3)), np.zeros((2, 5))], padding=True)
