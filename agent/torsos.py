"""Frame encoders (torsos) and the instruction encoder.

A torso maps uint8 frames ``[N, H, W, C]`` to features ``[N, out_features]``; it converts to
float in [0, 1] and to NCHW itself (the permuted view is channels-last in memory, which conv
layers accept directly). Each torso sizes its final linear layer from ``frame_shape`` with a
dummy forward, so any frame size works.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from agent.core import init_forget_bias


def _frames_to_float(frame: torch.Tensor) -> torch.Tensor:
    if frame.dtype != torch.uint8:
        raise TypeError(f"frames must be uint8 [N, H, W, C], got {frame.dtype}")
    return frame.permute(0, 3, 1, 2).float().mul_(1.0 / 255.0)


class _ConvTorso(nn.Module):
    """Shared tail: conv stack -> relu -> flatten -> linear ``out_features`` -> relu."""

    def __init__(self, convs: nn.Module, frame_shape: tuple[int, int, int], out_features: int):
        super().__init__()
        self.convs = convs
        self.out_features = out_features
        height, width, channels = frame_shape
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, channels, height, width)).numel()
        self.linear = nn.Linear(flat, out_features)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.convs(_frames_to_float(frame)))
        return F.relu(self.linear(x.flatten(1)))


class _ResidualBlock(nn.Module):
    """``x + conv(relu(conv(relu(x))))``, 3x3 convs keeping the channel count."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


def deep_torso(frame_shape: tuple[int, int, int], out_features: int) -> _ConvTorso:
    """IMPALA's deep ResNet: 3 stacks (16, 32, 32) of [conv3x3, maxpool 3x3/2, 2 residual blocks]."""
    layers: list[nn.Module] = []
    in_channels = frame_shape[2]
    for channels in (16, 32, 32):
        layers += [nn.Conv2d(in_channels, channels, 3, padding=1),
                   nn.MaxPool2d(3, stride=2, padding=1),
                   _ResidualBlock(channels), _ResidualBlock(channels)]
        in_channels = channels
    return _ConvTorso(nn.Sequential(*layers), frame_shape, out_features)


def shallow_torso(frame_shape: tuple[int, int, int], out_features: int) -> _ConvTorso:
    """IMPALA's shallow net: conv 8x8/4 (16) -> relu -> conv 4x4/2 (32), no padding."""
    convs = nn.Sequential(nn.Conv2d(frame_shape[2], 16, 8, stride=4), nn.ReLU(),
                          nn.Conv2d(16, 32, 4, stride=2))
    return _ConvTorso(convs, frame_shape, out_features)


def small_torso(frame_shape: tuple[int, int, int], out_features: int) -> _ConvTorso:
    """For small egocentric frames (MiniGrid 28x28 / 56x56 RGB views): conv 3x3/2 (16) -> relu ->
    conv 3x3/2 (32) -> relu -> conv 3x3/1 (32), padding 1 (28x28 -> 7x7x32 before the linear)."""
    convs = nn.Sequential(nn.Conv2d(frame_shape[2], 16, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv2d(32, 32, 3, padding=1))
    return _ConvTorso(convs, frame_shape, out_features)


TORSO_BUILDERS = {"deep": deep_torso, "shallow": shallow_torso, "small": small_torso}


def build_torso(name: str, frame_shape: tuple[int, int, int], out_features: int) -> _ConvTorso:
    return TORSO_BUILDERS[name](tuple(frame_shape), out_features)


class InstructionEncoder(nn.Module):
    """Word ids ``[N, L]`` (1..buckets, 0 = padding) -> embedding -> LSTM -> output at the last real
    word ``[N, hidden]``; an all-padding instruction gives zeros.

    All N sequences run through one ``nn.LSTM`` call over the full length L (no packing, so no
    lengths on the host): the LSTM is causal, so the output at the last real word does not depend
    on the padding after it, and it is picked with a gather. It runs in float32 under autocast.
    """

    def __init__(self, buckets: int, embed: int, hidden: int):
        super().__init__()
        self.embedding = nn.Embedding(buckets + 1, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        init_forget_bias(self.lstm.bias_ih_l0, self.lstm.bias_hh_l0, hidden)   # TF LSTMBlockCell's +1
        self.out_features = hidden

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        real = words != 0
        positions = torch.arange(1, words.shape[-1] + 1, device=words.device)
        last = (real * positions).amax(-1)                     # 1 + index of the last real word; 0 if none
        with torch.autocast(words.device.type, enabled=False):  # small; fp32 (no bf16 LSTM on CPU)
            outputs, _ = self.lstm(self.embedding(words))      # [N, L, hidden]
        index = (last - 1).clamp(min=0)
        picked = outputs.gather(1, index.view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])).squeeze(1)
        return picked * (last > 0).unsqueeze(-1).to(picked.dtype)
