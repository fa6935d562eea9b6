"""Image modules of :class:`~jat_policy.modeling.JatModel`: the Atari frame encoder/decoder and ViT patch embeddings.

Names and shapes follow the released checkpoint (``image_encoder.module.conv1`` ... ``vit_encoder.projection``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jat_policy.configuration import JatConfig

__all__ = ["AttentionLayer", "DualBatchReshapeWrapper", "ImageDecoder", "ImageEncoder", "PatchEmbeddings"]


class AttentionLayer(nn.Module):
    """Squeeze-and-excitation channel attention: pool, bottleneck MLP, sigmoid gate."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(num_channels, num_channels // 8, bias=False),
            nn.ReLU(),
            nn.Linear(num_channels // 8, num_channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Applies the module (shapes in the class docstring)."""
        gate = self.fc(x.mean(dim=(2, 3)))  # (N, C)
        return x * gate[:, :, None, None]


class ImageEncoder(nn.Module):
    """Conv encoder of 4×84×84 frames: three stride-2 conv blocks (84→42→21→11), then a linear to H."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 32, kernel_size=3, stride=2, padding=1)
        self.norm1 = nn.InstanceNorm2d(32)
        self.att1 = AttentionLayer(32)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1)
        self.norm2 = nn.InstanceNorm2d(64)
        self.att2 = AttentionLayer(64)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1)
        self.norm3 = nn.InstanceNorm2d(128)
        self.att3 = AttentionLayer(128)
        self.fc = nn.Linear(128 * 11 * 11, hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        """Applies the module (shapes in the class docstring)."""
        x = self.att1(F.leaky_relu(self.norm1(self.conv1(x))))  # (N, 32, 42, 42)
        x = self.att2(F.leaky_relu(self.norm2(self.conv2(x))))  # (N, 64, 21, 21)
        x = self.att3(F.leaky_relu(self.norm3(self.conv3(x))))  # (N, 128, 11, 11)
        return self.fc(x.flatten(start_dim=1))  # (N, H)


class ImageDecoder(nn.Module):
    """Mirror of :class:`ImageEncoder`: H → 128×11×11 → 21 → 42 → 84, tanh output in [-1, 1]."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.fc = nn.Linear(hidden_size, 128 * 11 * 11)
        self.deconv1 = nn.ConvTranspose2d(128, 64, kernel_size=3, stride=2, padding=1, output_padding=1)
        self.norm1 = nn.InstanceNorm2d(64)
        self.att1 = AttentionLayer(64)
        self.deconv2 = nn.ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=1, output_padding=1)
        self.norm2 = nn.InstanceNorm2d(32)
        self.att2 = AttentionLayer(32)
        self.deconv3 = nn.ConvTranspose2d(32, 4, kernel_size=3, stride=2, padding=1, output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """Applies the module (shapes in the class docstring)."""
        x = self.fc(x).view(-1, 128, 11, 11)  # (N, 128, 11, 11)
        x = F.leaky_relu(self.norm1(self.deconv1(x)))  # (N, 64, 22, 22)
        x = self.att1(F.interpolate(x, size=(21, 21)))  # (N, 64, 21, 21): nearest, as the reference
        x = self.att2(F.leaky_relu(self.norm2(self.deconv2(x))))  # (N, 32, 42, 42)
        return torch.tanh(self.deconv3(x))  # (N, 4, 84, 84)


class DualBatchReshapeWrapper(nn.Module):
    """Applies a per-item module to ``(B, L, ...)`` inputs by folding ``B·L`` into one batch."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        """Applies the module (shapes in the class docstring)."""
        batch, length = x.shape[:2]
        y = self.module(x.reshape(batch * length, *x.shape[2:]))  # (B·L, ...)
        return y.view(batch, length, *y.shape[1:])  # (B, L, ...)


class PatchEmbeddings(nn.Module):
    """ViT patch embeddings (no CLS token, no position embedding: the backbone's ``wpe`` gives positions)."""

    def __init__(self, config: JatConfig) -> None:
        super().__init__()
        self.image_size = config.image_size
        self.num_patches = (config.image_size // config.patch_size) ** 2
        self.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )

    def forward(self, pixel_values: Tensor) -> Tensor:
        """Applies the module (shapes in the class docstring)."""
        if pixel_values.dim() != 4 or pixel_values.shape[-1] != self.image_size:
            raise ValueError(
                f"pixel_values must be (B, C, {self.image_size}, {self.image_size}), got {tuple(pixel_values.shape)}; "
                "use JatProcessor(images=...) to resize and normalise images."
            )
        return self.projection(pixel_values).flatten(2).transpose(1, 2)  # (B, patches, H)
