"""The decoded dataset held in the training device's memory and augmented there, a batch at a time.

On a GPU a stage-1 step takes less time than a core needs to augment a batch, so the host path (items made
by FaceDynDataset in DataLoader workers, pinned batches copied over) starves it. Here the samples are
copied to the device once (the default set: 45 MB of uint8 flow images, 3 MB of landmarks) and what a host
worker does per item happens per batch on the device. The random choices stay on the host: DataLoader
workers draw each sample's augmentation with Augmenter.draw (from (seed, epoch, row) alone) in the
EpochSampler's order and hand over small arrays, so the sample order and every draw are the host path's.
What differs is arithmetic: the zoom/shift resampling is bilinear in float32 here, fixed-point in
cv2.warpAffine, and landmarks are moved in float32, not float64 (tests/test_resident.py bounds both).

Mirrored samples are made once, with the host path's own functions, and kept beside the originals, so a
flip is a selection. The head-motion augmentation (off by default) has no device version: with it on,
`data.on_device: null` loads on the host and `true` is refused.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from facedyn.data.augment import MIRROR_PERMUTATION, Augmenter
from facedyn.data.config import DataConfig
from facedyn.data.dataset import EpochSampler
from facedyn.data.errors import DataError
from facedyn.data.expressions import expression_indices
from facedyn.data.samples import Samples
from facedyn.flow.encoding import mirror_flow_image

Batch = dict[str, torch.Tensor]


HEAD_MOTION_ON_DEVICE = ("data.on_device=true cannot apply the head-motion augmentation (data.augment.head_motion_*): it "
                         "has no device version; set data.on_device=false or the head_motion_* settings to 0")


def head_motion_augmented(cfg: DataConfig) -> bool:
    augment = cfg.augment
    return augment.enabled and bool(augment.head_motion_deg or augment.head_motion_shift or augment.head_motion_scale)


def use_resident(cfg: DataConfig, device: torch.device) -> bool:
    """Whether training on `device` keeps the data there (data.on_device; null: on CUDA when it can)."""
    if cfg.on_device is None:
        return device.type == "cuda" and not head_motion_augmented(cfg)
    if cfg.on_device and head_motion_augmented(cfg):
        raise DataError(HEAD_MOTION_ON_DEVICE)
    return bool(cfg.on_device)


class DrawSet(Dataset):
    """Items: the augmentation draws of one sample as arrays, for an (epoch, item) key (EpochSampler's)."""

    def __init__(self, augmenter: Augmenter, rows: np.ndarray, image_size: tuple[int, int],
                 landmark_shape: tuple[int, ...]):
        self.augmenter, self.rows = augmenter, np.asarray(rows, dtype=np.int64)
        self.image_size, self.landmark_shape = image_size, landmark_shape

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, np.ndarray]:
        epoch, item = key
        row = int(self.rows[item])
        draw = self.augmenter.draw(epoch, row, self.image_size, self.landmark_shape)
        arrays = {"row": np.int64(row), "flip": np.bool_(draw.flip), "zoom": np.float64(draw.zoom),
                  "shift": np.asarray(draw.shift, dtype=np.float64),
                  "value_factor": np.float32(draw.gain / 255)}  # pixel value factor, rounded as the host path rounds it
        if draw.noise is not None:
            arrays["noise"] = np.asarray(draw.noise, dtype=np.int64)  # field, mirrored, dy, dx
        if draw.jitter is not None:
            arrays["jitter"] = np.stack(draw.jitter).astype(np.float32)  # (2, 146, 2)
        return arrays


class ResidentData:
    """Samples on `device`; un-augmented batches of rows, and augmented ones from DrawSet batches."""

    def __init__(self, samples: Samples, expressions: tuple[str, ...], device: torch.device,
                 augmenter: Optional[Augmenter], channels_last: bool = False):
        self.device, self.augmenter, self.channels_last = device, augmenter, channels_last
        self.samples = samples
        self.flow = self._put(samples.flow)  # (N, H, W, 3) uint8
        self.expression = self._put(samples.expression_landmarks.astype(np.float32))
        self.baseline = self._put(samples.baseline_landmarks.astype(np.float32))
        targets, valid = samples.targets()
        self.targets, self.valid = self._put(targets.astype(np.float32)), self._put(valid.astype(np.float32))
        self.expression_index = self._put(expression_indices(samples.expression, expressions))
        self._augment_tables: Optional[dict[str, torch.Tensor]] = None

    def _put(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.samples.flow.shape[1:3])

    def _flow_input(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) float → the model's (B, 3, H, W) in the memory layout the runtime uses."""
        chw = images.permute(0, 3, 1, 2)  # channels-last strides already
        return chw if self.channels_last else chw.contiguous()

    def _batch(self, rows: torch.Tensor, image: torch.Tensor, expression: torch.Tensor, baseline: torch.Tensor) -> Batch:
        return {"flow_image": self._flow_input(image), "expression_landmarks": expression,
                "baseline_landmarks": baseline, "target": self.targets[rows], "target_valid": self.valid[rows],
                "index": rows, "expression_index": self.expression_index[rows]}

    def batch(self, rows: torch.Tensor) -> Batch:
        """Un-augmented rows: what FaceDynDataset without an augmenter gives, bit for bit."""
        rows = rows.to(self.device)
        return self._batch(rows, self.flow[rows].float() / 255, self.expression[rows], self.baseline[rows])

    def batches(self, rows: np.ndarray, batch_size: int) -> Iterator[Batch]:
        """Un-augmented batches of `rows`, in order."""
        rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        for start in range(0, len(rows), batch_size):
            yield self.batch(rows[start:start + batch_size])

    def _tables(self) -> dict[str, torch.Tensor]:
        """Per row, made once: each sample's landmark frame, its mirrored copy, and the noise bank."""
        if self._augment_tables is None:
            augmenter, samples = self.augmenter, self.samples
            expression, baseline = samples.expression_landmarks, samples.baseline_landmarks
            if augmenter.frame_size is not None:
                width, height = augmenter.frame_size
                frames = np.tile(np.array([0.0, 0.0, width, height]), (len(samples), 1))
            else:  # Frame.around each sample's two landmark sets
                points = np.concatenate([expression, baseline], axis=1)
                low, high = points.min(axis=1).astype(np.float64), points.max(axis=1).astype(np.float64)
                frames = np.concatenate([low, high - low], axis=1)
            tables = {"frame": self._put(frames.astype(np.float32))}
            if augmenter.cfg.hflip_p > 0:
                # mirror_landmarks with each row's frame: x -> (2 left + width) - x in float32, as it computes it
                axis = (2 * frames[:, 0] + frames[:, 2]).astype(np.float32)[:, None]
                for name, landmarks in (("expression", expression), ("baseline", baseline)):
                    mirrored = landmarks[:, MIRROR_PERMUTATION, :].astype(np.float32)
                    mirrored[..., 0] = axis - mirrored[..., 0]
                    tables[f"mirrored_{name}"] = self._put(mirrored)
                tables["mirrored_flow"] = self._put(mirror_flow_image(samples.flow))
            if augmenter.cfg.noise_std:
                tables["noise"] = self._put(augmenter.noise_fields(samples.flow.shape[1:]))
            self._augment_tables = tables
        return self._augment_tables

    def augmented(self, draws: dict[str, torch.Tensor]) -> Batch:
        """The batch of DrawSet items `draws` (collated), augmented as Augmenter.apply does it item by item."""
        cfg, tables = self.augmenter.cfg, self._tables()
        draws = {key: value.to(self.device, non_blocking=True) for key, value in draws.items()}
        rows, flip = draws["row"], draws["flip"]
        image, expression, baseline = self.flow[rows], self.expression[rows], self.baseline[rows]
        if "mirrored_flow" in tables:
            image = torch.where(flip[:, None, None, None], tables["mirrored_flow"][rows], image)
            expression = torch.where(flip[:, None, None], tables["mirrored_expression"][rows], expression)
            baseline = torch.where(flip[:, None, None], tables["mirrored_baseline"][rows], baseline)
        image = image.float()
        if cfg.scale or cfg.shift:
            zoom, shift, frame = draws["zoom"], draws["shift"], tables["frame"][rows]
            image = _zoom_shift_images(image, zoom, shift)
            size, centre = frame[:, 2:], frame[:, :2] + frame[:, 2:] / 2
            zoom32, moved = zoom.float()[:, None, None], (shift.float() * size)[:, None, :]
            expression = (expression - centre[:, None, :]) * zoom32 + centre[:, None, :] + moved
            baseline = (baseline - centre[:, None, :]) * zoom32 + centre[:, None, :] + moved
        image = image * draws["value_factor"][:, None, None, None]
        if "noise" in draws:
            image = image + _noise(tables["noise"], draws["noise"])
        image = image.clamp_(0, 1)
        if "jitter" in draws:
            face_size = (baseline.amax(dim=1) - baseline.amin(dim=1)).amax(dim=1)
            sigma = (cfg.landmark_jitter * face_size)[:, None, None]
            expression = expression + sigma * draws["jitter"][:, 0]
            baseline = baseline + sigma * draws["jitter"][:, 1]
        return self._batch(rows, image, expression, baseline)


def _zoom_shift_images(images: torch.Tensor, zoom: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) float pixel values zoomed about the centre and shifted (fractions of the size) with
    zeros outside, each rounded to an integer as cv2.warpAffine's uint8 result is (augment._zoom_shift_image)."""
    batch, height, width, _ = images.shape
    sizes = torch.tensor([width, height], dtype=torch.float64, device=images.device)
    offset = sizes / 2 * (1 - zoom[:, None]) + shift * sizes  # (B, 2): the matrix's translation
    # Output pixel p shows input point (p - offset) / zoom; grid_sample's coordinates are -1..1 across
    # the pixels' outer edges (align_corners=False), pixel i's centre at (2 i + 1) / size - 1.
    xs = torch.arange(width, dtype=torch.float64, device=images.device)
    ys = torch.arange(height, dtype=torch.float64, device=images.device)
    gx = (2 * (xs[None] - offset[:, :1]) / zoom[:, None] + 1) / width - 1
    gy = (2 * (ys[None] - offset[:, 1:]) / zoom[:, None] + 1) / height - 1
    grid = torch.stack([gx[:, None, :].expand(batch, height, width), gy[:, :, None].expand(batch, height, width)], -1)
    warped = torch.nn.functional.grid_sample(images.permute(0, 3, 1, 2), grid.float(), mode="bilinear",
                                             padding_mode="zeros", align_corners=False)
    return warped.round_().permute(0, 2, 3, 1)


def _noise(bank: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3): per sample field[(y + dy) % H, (x + dx) % W] of its bank field, mirrored in x first
    when drawn so (augment.Augmenter._add_noise)."""
    _, height, width, _ = bank.shape
    field, mirrored, dy, dx = noise.unbind(1)
    ys = (torch.arange(height, device=bank.device)[None] + dy[:, None]) % height
    xs = (torch.arange(width, device=bank.device)[None] + dx[:, None]) % width
    xs = torch.where(mirrored[:, None].bool(), width - 1 - xs, xs)
    return bank[field[:, None, None], ys[:, :, None], xs[:, None, :]]


class ResidentLoader:
    """A stage's training batches from resident data: like a persistent DataLoader, `sampler.set_epoch(e)`
    picks the epoch. Augmented: DataLoader workers draw on the host, the device applies. Otherwise the
    EpochSampler's rows, batched."""

    def __init__(self, resident: ResidentData, rows: np.ndarray, batch_size: int, shuffle: bool, seed: int,
                 augment: bool, num_workers: int):
        self.resident, self.rows, self.batch_size = resident, np.asarray(rows, dtype=np.int64), batch_size
        self.sampler = EpochSampler(len(rows), shuffle, seed)
        self.draws: Optional[DataLoader] = None
        if augment:
            draw_set = DrawSet(resident.augmenter, self.rows, resident.image_size,
                               tuple(resident.samples.expression_landmarks.shape[1:]))
            self.draws = DataLoader(draw_set, batch_size=batch_size, sampler=self.sampler, num_workers=num_workers,
                                    persistent_workers=num_workers > 0)

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        if self.draws is not None:
            return (self.resident.augmented(draws) for draws in self.draws)
        order = [item for _, item in self.sampler]
        rows = torch.as_tensor(self.rows[order])
        return (self.resident.batch(rows[start:start + self.batch_size]) for start in range(0, len(rows), self.batch_size))
