"""JatModel: reference parity, checkpoint layout, serialisation, losses, masks, cache and generation."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from jat_policy.backbone import gelu_new
from jat_policy.configuration import JatConfig
from jat_policy.modeling import (
    JatModel,
    build_attention_bias,
    compute_ce_loss,
    compute_mse_loss,
    cyclic_expand_dim,
)
from tests.conftest import FIXTURES, PARITY_DIR, tiny_config

ATOL = 1e-5


@pytest.fixture(scope="module")
def parity_model() -> JatModel:
    return JatModel.from_pretrained(PARITY_DIR)


@pytest.fixture(scope="module")
def cases() -> dict[str, torch.Tensor]:
    return load_file(str(PARITY_DIR / "cases.safetensors"))


def _inputs(c: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    if name in ("text", "vl"):
        keys = {"input_ids": "input_ids", "mask": "attention_mask", "pixel_values": "pixel_values"}
    else:
        kind = {"cont": "continuous", "big": "continuous", "long": "continuous", "disc": "discrete", "img": "image"}
        act = "discrete_actions" if name in ("disc", "img") else "continuous_actions"
        keys = {
            "obs": f"{kind[name]}_observations",
            "act": act,
            "rew": "rewards",
            "mask": "attention_mask",
            "loss_weight": "loss_weight",
        }
    return {arg: c[f"{name}.{key}"] for key, arg in keys.items() if f"{name}.{key}" in c}


PARITY_OUTPUTS = ["pred_actions", "pred_observations", "logits", "loss", "action_loss", "observation_loss"]


@pytest.mark.parametrize("case", ["cont", "big", "long", "disc", "img", "text", "vl"])
def test_reference_parity(parity_model: JatModel, cases: dict[str, torch.Tensor], case: str) -> None:
    with torch.no_grad():
        out = parity_model(**_inputs(cases, case))
    checked = 0
    for field in PARITY_OUTPUTS:
        key = f"{case}.{field}"
        if key not in cases:
            continue
        got = getattr(out, field)
        assert got is not None, f"{key} missing from the output"
        torch.testing.assert_close(got.reshape(cases[key].shape), cases[key], atol=ATOL, rtol=0)
        checked += 1
    assert checked >= 1


def test_jat_small_matches_released_layout() -> None:
    layout = json.loads((FIXTURES / "jat_small_checkpoint_layout.json").read_text())
    with torch.device("meta"):
        model = JatModel(JatConfig.from_preset("jat-small"))
    assert sum(p.numel() for p in model.parameters()) == 192_701_771
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == layout["state_dict_shapes"]
    for key in ("hidden_size", "num_layers", "num_heads", "max_position_embeddings", "vocab_size", "window_size"):
        assert getattr(model.config, key) == layout["config"][key]
    assert model.single_discrete_decoder.weight is not model.transformer.wte.weight  # untied head


def test_released_config_json_loads() -> None:
    layout = json.loads((FIXTURES / "jat_small_checkpoint_layout.json").read_text())
    config = JatConfig(**{k: v for k, v in layout["config"].items() if k != "model_type"})
    assert config.attention_layers == ["global", "local"] * 6
    assert config.observation_loss_coef == 0.005 and config.max_discrete_value == 212


def test_save_load_round_trip(tmp_path, cases) -> None:
    torch.manual_seed(0)
    model = JatModel(tiny_config(max_discrete_value=212, vocab_size=1024)).eval()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = JatModel.from_pretrained(tmp_path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    inputs = _inputs(cases, "disc")
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).pred_actions, loaded(**inputs).pred_actions, atol=0, rtol=0)
    assert loaded.transformer.wte is loaded.single_discrete_encoder is loaded.multi_discrete_encoder[0]


@pytest.mark.parametrize("alias", ["single_discrete_encoder.weight", "multi_discrete_encoder.0.weight"])
def test_wte_under_any_alias(tmp_path, parity_model, alias) -> None:
    shutil.copy(PARITY_DIR / "config.json", tmp_path / "config.json")
    state = load_file(str(PARITY_DIR / "model.safetensors"))
    state[alias] = state.pop("transformer.wte.weight")
    save_file(state, str(tmp_path / "model.safetensors"))
    loaded = JatModel.from_pretrained(tmp_path)
    assert torch.equal(loaded.transformer.wte.weight, parity_model.transformer.wte.weight)


def test_corrupt_checkpoints_fail_clearly(tmp_path) -> None:
    shutil.copy(PARITY_DIR / "config.json", tmp_path / "config.json")
    data = (PARITY_DIR / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        JatModel.from_pretrained(tmp_path)

    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        JatModel.from_pretrained(tmp_path)

    config = json.loads((PARITY_DIR / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "gpt_neo"}))
    shutil.copy(PARITY_DIR / "model.safetensors", tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="model_type='gpt_neo'"):
        JatModel.from_pretrained(tmp_path)

    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_size": 64, "num_heads": 4}))
    with pytest.raises(ValueError, match="shape"):
        JatModel.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([], "holds a JSON list"),
        (None, "holds a JSON NoneType"),
        ("jat", "holds a JSON str"),
        ({"num_heads": 0}, "num_heads must be an integer >= 1, got 0"),
        ({"hidden_size": 0}, "hidden_size must be an integer >= 1, got 0"),
        ({"num_layers": 0}, "num_layers must be an integer >= 1, got 0"),
        ({"vocab_size": -3}, "vocab_size must be an integer >= 1, got -3"),
        ({"max_continuous_size": 0}, "max_continuous_size must be an integer >= 1"),
        ({"hidden_size": "32"}, "hidden_size"),
        ({"hidden_size": 30}, "not divisible by num_heads"),
        ({"hidden_size": 32768}, r"36\.1B parameters .* above the 10B limit"),
        ({"vocab_size": 10**9}, r"64\.\dB parameters"),
    ],
)
def test_wrong_config_json_is_a_value_error_naming_file_and_field(tmp_path, content, message) -> None:
    shutil.copy(PARITY_DIR / "model.safetensors", tmp_path / "model.safetensors")
    if isinstance(content, dict):
        content = {**json.loads((PARITY_DIR / "config.json").read_text()), **content}
    (tmp_path / "config.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as error:
        JatModel.from_pretrained(tmp_path)
    assert str(tmp_path / "config.json") in str(error.value)


def test_a_presets_depth_override_alternates_global_and_local_layers() -> None:
    for layers, kinds in ((1, ["global"]), (3, ["global", "local", "global"]), (4, ["global", "local"] * 2)):
        config = JatConfig.from_preset("jat-tiny", num_layers=layers)
        assert config.num_layers == layers and config.attention_layers == kinds
    explicit = JatConfig.from_preset("jat-tiny", num_layers=2, attention_types=[[["local"], 2]])
    assert explicit.attention_layers == ["local", "local"]  # given attention_types win


def test_parameter_estimate_matches_the_built_models() -> None:
    from jat_policy.configuration import MAX_PARAMETERS, estimate_num_parameters

    for config in (tiny_config(), JatConfig.from_preset("jat-tiny"), JatConfig.from_preset("jat-mini")):
        built = sum(p.numel() for p in JatModel(config).parameters())
        assert abs(estimate_num_parameters(config) - built) <= 1e-4 * built
    assert abs(estimate_num_parameters(JatConfig.from_preset("jat-small")) - 192_701_771) <= 20_000
    assert estimate_num_parameters(JatConfig.from_preset("jat-large")) < MAX_PARAMETERS  # every preset builds
    with pytest.raises(ValueError, match="raise jat_policy.configuration.MAX_PARAMETERS"):
        JatConfig.from_preset("jat-small", hidden_size=32768, num_heads=16)


def test_offline_hub_id_fails_fast(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="Offline"):
        JatModel.from_pretrained("jat-project/jat")


def test_cyclic_expand_dim() -> None:
    x = torch.arange(5.0).view(1, 1, 5)
    assert cyclic_expand_dim(x, 12).flatten().tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert torch.equal(cyclic_expand_dim(x, 5), x)
    with pytest.raises(ValueError, match="max_continuous_size"):
        cyclic_expand_dim(torch.zeros(1, 1, 378), 377)


def test_gelu_new_is_gpt_neos_tanh_gelu_with_and_without_autograd() -> None:
    """The CPU inference form (x * sigmoid) is the tanh GELU GPT-Neo trains with, and training keeps its gradient."""
    x = torch.linspace(-12, 12, 4097, dtype=torch.float32)
    reference = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.pow(3))))  # HF's gelu_new
    with torch.no_grad():
        torch.testing.assert_close(gelu_new(x), reference, atol=1e-6, rtol=1e-5)
    leaf = x.clone().requires_grad_()
    gelu_new(leaf).sum().backward()
    expected = x.clone().requires_grad_()
    torch.nn.functional.gelu(expected, approximate="tanh").sum().backward()
    torch.testing.assert_close(leaf.grad, expected.grad)


def test_attention_bias_window_and_padding() -> None:
    pos = torch.arange(6)[None]
    valid = torch.tensor([[True, True, True, True, False, False]])
    bias = build_attention_bias(pos, pos, valid, window=2)[0, 0]
    allowed = bias == 0
    # query 3 sees itself and 2 (window 2); never the future
    assert allowed[3].tolist() == [False, False, True, True, False, False]
    assert not allowed.triu(1).any()
    # padded keys are never allowed, even inside the window
    assert not allowed[:, 4:].any()
    # a fully padded window stays finite (no NaN after softmax)
    assert torch.isfinite(torch.softmax(bias[5], dim=-1)).all()


def test_mse_mask_and_weights() -> None:
    pred, target = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert compute_mse_loss(pred, target, mask).item() == pytest.approx(1.0)
    weights = torch.tensor([[2.0, 2.0, 9.0], [2.0, 9.0, 9.0]])
    assert compute_mse_loss(pred, target, mask, weights).item() == pytest.approx(2.0)
    target[0, 2] = 100.0  # a masked step changes nothing
    assert compute_mse_loss(pred, target, mask).item() == pytest.approx(1.0)


def test_ce_honours_per_step_weights_and_no_mask() -> None:
    logits = torch.randn(2, 3, 5)
    labels = torch.randint(0, 5, (2, 3))
    per_step = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(2, 3)
    weights = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    expected = (per_step * weights * mask).sum() / mask.sum()
    assert compute_ce_loss(logits, labels, mask, weights).item() == pytest.approx(expected.item(), rel=1e-6)
    # the reference crashed without a mask
    assert compute_ce_loss(logits, labels, None).item() == pytest.approx(per_step.mean().item(), rel=1e-6)


def test_masked_steps_do_not_change_rl_loss() -> None:
    torch.manual_seed(0)
    model = JatModel(tiny_config()).eval()
    obs, act = torch.randn(1, 6, 3), torch.randn(1, 6, 2)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        a = model(continuous_observations=obs, continuous_actions=act, rewards=torch.zeros(1, 6), attention_mask=mask)
        obs2, act2 = obs.clone(), act.clone()
        obs2[:, 4:], act2[:, 4:] = 50.0, -50.0
        b = model(
            continuous_observations=obs2, continuous_actions=act2, rewards=torch.zeros(1, 6), attention_mask=mask
        )
    torch.testing.assert_close(a.loss, b.loss)
    torch.testing.assert_close(a.pred_actions[:, :4], b.pred_actions[:, :4])


def test_kappa_zero_skips_observation_prediction(monkeypatch) -> None:
    model = JatModel(tiny_config(observation_loss_coef=0.0)).eval()

    def boom(*args, **kwargs):
        raise AssertionError("image decoder must not run when observation_loss_coef == 0")

    monkeypatch.setattr(model.image_decoder, "forward", boom)
    out = model(
        image_observations=torch.rand(1, 2, 4, 84, 84) * 2 - 1,
        discrete_actions=torch.tensor([[1, 2]]),
        rewards=torch.zeros(1, 2),
    )
    assert out.pred_observations is None
    assert out.observation_loss.item() == 0.0
    assert out.loss.item() == pytest.approx(model.config.action_loss_coef * out.action_loss.item())


def test_loss_weight_scales_continuous_loss() -> None:
    torch.manual_seed(0)
    model = JatModel(tiny_config()).eval()
    inputs = dict(continuous_observations=torch.randn(2, 4, 3), continuous_actions=torch.randn(2, 4, 2))
    with torch.no_grad():
        base = model(**inputs, rewards=torch.zeros(2, 4), loss_weight=torch.ones(2, 4))
        tenfold = model(**inputs, rewards=torch.zeros(2, 4), loss_weight=torch.full((2, 4), 10.0))
    assert tenfold.loss.item() == pytest.approx(10 * base.loss.item(), rel=1e-5)


def test_kv_cache_matches_full_forward_with_padding_rows() -> None:
    torch.manual_seed(0)
    model = JatModel(tiny_config()).eval()
    embeds = torch.randn(2, 10, 32)
    with torch.no_grad():
        full, _ = model.transformer(embeds)
        first, cache = model.transformer(embeds[:, :7], use_cache=True)
        second, _ = model.transformer(embeds[:, 7:], cache=cache)
        torch.testing.assert_close(torch.cat((first, second), 1), full, atol=1e-5, rtol=0)
        # row 1 holds 3 invalid (left-padding) slots before its context: same result, positions explicit
        pad = torch.randn(1, 3, 32)
        padded = torch.cat((pad, embeds[1:, :7]), 1)
        mask = torch.tensor([[0, 0, 0] + [1] * 7])
        pos = torch.tensor([[0, 0, 0] + list(range(7))])
        _, cache_p = model.transformer(padded, attention_mask=mask, position_ids=pos, use_cache=True)
        out, _ = model.transformer(embeds[1:, 7:], cache=cache_p)
    torch.testing.assert_close(out, full[1:, 7:], atol=1e-5, rtol=0)


def test_cache_keyword_new_and_old_names() -> None:
    # transformers >= 5.24 names the cache `cache`; the reference (and older transformers) `past_key_values`
    torch.manual_seed(0)
    model = JatModel(tiny_config()).eval()
    obs, act = torch.randn(2, 6, 3), torch.randn(2, 6, 2)
    with torch.no_grad():
        full = model(continuous_observations=obs, continuous_actions=act, return_loss=False)
        first = model(continuous_observations=obs[:, :4], continuous_actions=act[:, :4], use_cache=True)
        assert first.cache is not None and first.past_key_values is first.cache
        rest = dict(continuous_observations=obs[:, 4:], continuous_actions=act[:, 4:], return_loss=False)
        new = model(**rest, cache=first.cache)
        old = model(**rest, past_key_values=first.cache)
        with pytest.raises(ValueError, match="not both"):
            model(**rest, cache=first.cache, past_key_values=first.cache)
    torch.testing.assert_close(new.pred_actions, full.pred_actions[:, 4:], atol=1e-5, rtol=0)
    torch.testing.assert_close(old.pred_actions, new.pred_actions, atol=0, rtol=0)


def test_positions_beyond_table_raise() -> None:
    model = JatModel(tiny_config())
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model.transformer(torch.randn(1, 65, 32))


def test_discrete_inputs_outside_vocab_raise() -> None:
    model = JatModel(tiny_config(max_discrete_value=12))
    with pytest.raises(ValueError, match="vocabulary"):
        model(
            discrete_observations=torch.zeros(1, 2, 12, dtype=torch.long),
            discrete_actions=torch.tensor([[1, 64]]),
            rewards=torch.zeros(1, 2),
        )
    with pytest.raises(ValueError, match="12 slots"):  # fewer slots are padded (pad_discrete_slots); more cannot be
        model(
            discrete_observations=torch.zeros(1, 2, 13, dtype=torch.long),
            discrete_actions=torch.tensor([[1, 2]]),
            rewards=torch.zeros(1, 2),
        )


@pytest.mark.parametrize("batch", [1, 8])  # 1 x 3 x 12 ids < 64 vocabulary rows; 8 x 3 x 12 > 64: projected table
def test_discrete_slot_encoder_matches_its_modules(batch) -> None:
    torch.manual_seed(0)
    model = JatModel(tiny_config(max_discrete_value=12, discrete_slot_size=5))
    assert model.multi_discrete_encoder[4].in_features == 12 * 5
    ids = torch.randint(0, 64, (batch, 3, 12))
    params = list(model.multi_discrete_encoder.parameters())
    fast = model._encode_discrete_slots(ids)  # (B, 3, H - 1)
    plain = model.multi_discrete_encoder(ids)
    torch.testing.assert_close(fast, plain, atol=1e-6, rtol=1e-5)
    weights = torch.randn_like(plain)
    for got, want in zip(
        torch.autograd.grad((fast * weights).sum(), params),
        torch.autograd.grad((plain * weights).sum(), params),
        strict=True,
    ):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_discrete_slot_size_default_and_validation(tmp_path) -> None:
    assert JatModel(tiny_config(hidden_size=128)).multi_discrete_encoder[1].out_features == 128 // 50
    model = JatModel(tiny_config(discrete_slot_size=7))
    model.save_pretrained(tmp_path)
    assert JatModel.from_pretrained(tmp_path).multi_discrete_encoder[1].out_features == 7
    with pytest.raises(ValueError, match="discrete_slot_size must be >= 1"):
        tiny_config(discrete_slot_size=0)


def _greedy_without_cache(model: JatModel, ids: torch.Tensor, pixels: torch.Tensor | None, n: int) -> torch.Tensor:
    for _ in range(n):
        logits = model(input_ids=ids, pixel_values=pixels, return_loss=False).logits
        ids = torch.cat((ids, logits[:, -1].argmax(-1, keepdim=True)), dim=1)
    return ids


def test_generate_text_and_captioning(parity_model: JatModel, cases) -> None:
    prompt = cases["text.input_ids"][:, :5]
    with torch.no_grad():
        got = parity_model.generate(prompt, max_new_tokens=6, eos_token_id=-1)
        assert got.shape == (2, 11)
        assert torch.equal(got, _greedy_without_cache(parity_model, prompt, None, 6))
        pixels = cases["vl.pixel_values"]
        cap = parity_model.generate(prompt[:, :2], pixel_values=pixels, max_new_tokens=4, eos_token_id=-1)
        assert torch.equal(cap, _greedy_without_cache(parity_model, prompt[:, :2], pixels, 4))


def test_text_loss_decreases_with_training() -> None:
    torch.manual_seed(0)
    model = JatModel(tiny_config())
    ids = torch.randint(0, 64, (4, 16))
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(input_ids=ids).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert losses[0] == pytest.approx(math.log(64), rel=0.2)


def test_attention_stays_fp32_under_bf16_autocast(monkeypatch) -> None:
    # autocast lists SDPA as a bf16 op; GPT-Neo computes the unscaled logits in fp32, so the backbone opts out
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen.append((q.dtype, torch.is_autocast_enabled("cpu")))
        return sdpa(q, k, v, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    model = JatModel(tiny_config())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(discrete_observations=torch.randint(0, 64, (2, 3, 212)), discrete_actions=torch.zeros(2, 3).long())
    assert seen and all(dtype == torch.float32 and not autocast for dtype, autocast in seen)
    assert torch.isfinite(out.loss)


def test_the_policy_steps_attention_equals_sdpa_and_stays_finite_on_masked_rows() -> None:
    from jat_policy.backbone import GPTNeoSelfAttentionCore, build_attention_bias

    gen = torch.Generator().manual_seed(0)
    rows, heads, queries, keys, head_dim = 3, 4, 2, 40, 16
    # a policy step's shapes: keys/values are a column slice of a larger preallocated buffer (a strided view)
    buffer = torch.randn(2, rows, heads, keys + 16, head_dim, generator=gen) * 3
    k, v = buffer[0, :, :, :keys], buffer[1, :, :, :keys]
    q = torch.randn(rows, queries, heads, head_dim, generator=gen).transpose(1, 2) * 3  # (B, heads, T, hd)
    lengths = torch.tensor([keys, 17, 0])  # a full row, a shorter one, and an idle row (every key invalid)
    q_pos = torch.stack([lengths - 2, lengths - 1], dim=1).clamp(min=0)
    q_pos[2] = torch.tensor([keys + 14, keys + 15])  # the idle row's placeholder tokens sit in the last columns
    k_pos = torch.arange(keys).expand(rows, -1)
    for window in (None, 8):  # global, and local: the idle row's keys are then all masked twice (-inf logits)
        bias = build_attention_bias(q_pos, k_pos, k_pos < lengths[:, None], window)
        assert torch.isinf(bias[2]).all() == (window is not None)
        step = GPTNeoSelfAttentionCore._attend_step(q, k, v, bias)
        sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
        assert step.shape == (rows, heads, queries, head_dim)
        assert torch.isfinite(step).all()
        torch.testing.assert_close(step[:2], sdpa[:2], rtol=0, atol=1e-5)  # the rows whose outputs are used


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_16_bit_kv_cache_attends_like_the_fp32_step_within_its_rounding(dtype) -> None:
    # JatPolicy's int8 keeps an fp16 cache on fp16 CPUs, bf16 a bf16 one (precision.kv_cache_dtype); queries fp32
    from jat_policy.backbone import GPTNeoSelfAttentionCore, build_attention_bias

    gen = torch.Generator().manual_seed(0)
    rows, heads, queries, keys, head_dim = 3, 4, 2, 40, 16
    k, v = (torch.randn(rows, heads, keys, head_dim, generator=gen) * 3 for _ in range(2))
    q = torch.randn(rows, heads, queries, head_dim, generator=gen)
    lengths = torch.tensor([keys, 17, 0])  # the last row idle: every key masked
    q_pos = torch.stack([lengths - 2, lengths - 1], dim=1).clamp(min=0)
    k_pos = torch.arange(keys).expand(rows, -1)
    core = GPTNeoSelfAttentionCore(tiny_config()).eval()
    for window in (None, 8):
        bias = build_attention_bias(q_pos, k_pos, k_pos < lengths[:, None], window)
        exact = GPTNeoSelfAttentionCore._attend_step(q, k, v, bias)
        low = core._attend(q, k.to(dtype), v.to(dtype), bias)
        assert low.dtype == torch.float32 and torch.isfinite(low).all()
        # the rounding of k and v (fp16: 2^-11, bf16: 2^-8 relative) moves the outputs by about as much
        tolerance = 0.02 if dtype == torch.float16 else 0.15
        torch.testing.assert_close(low[:2], exact[:2], rtol=0, atol=tolerance)
