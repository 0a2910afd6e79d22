"""Head motion between the baseline and the expression frame: fitted from landmarks, removed from flow images.

A recording nobody registered moves the whole head a little between the neutral baseline frame and each
expression frame; the flow image then carries that rigid motion on top of the facial movement it is meant to
show. From the two landmark sets of a sample we fit the baseline -> expression transform (similarity, or
affine) on points that expressions do not move, map it into the flow image's pixels and subtract the motion
field it implies from the decoded flow, on the face only (the background did not move with the head).

Stable points (STABLE_MESH_POINTS, face-mesh indices, all in the blendshape model's 146-point subset): the
nasal bridge (168, 197, 195: bone and cartilage under thin skin; not 6 at the nose root, which a snarl
wrinkles), the eye corners (medial 133/362 on the
canthal tendons, lateral 33/263; the lids close between them, they stay), and the face outline at the temples
and cheekbones (127, 234, 93 and 356, 454, 323: over the zygomatic arch, away from mouth, lids and brows).
Left out: brows and forehead (frontalis), lids, lips, cheeks and nose tip and wings (levator labii, snarl),
the jaw line and chin (mouth opening, mentalis). The fit is robust (reweighted by Tukey's biweight), so a
stable point that moves anyway (a detector slip, an unusual synkinesis) loses its weight.

Refinement (`FlowConfig.head_motion_refine`, on by default): a dozen landmarks that jitter by a pixel fix the
motion only to a few tenths of a pixel, so the similarity that most of the face's remaining flow shares is
then taken out too (a trimmed fit over the face, facedyn.flow.registration.residual_head_motion, the step
prepare.py uses after its own landmark registration); the expression's own region drops out of that fit.

The crop: landmarks are pixels of the video frame, the flow image is `image_size` pixels of some crop of it,
and the same crop was used for both frames. The layout does not record that crop, so it is a setting
(`FlowConfig.crop`): `frame` = the flow image shows the landmarks' whole frame (the built-in synthetic data;
the frame size comes from data.landmarks.image_width/height); `face_box` = a square box around each sample's
baseline landmarks, its size and centre relative to the landmarks' bounding box estimated once per dataset
from the flow images themselves (the box under which the flow at the landmarks best matches the landmarks'
own displacement). Either way the fit is measured and reported (share of the landmarks' motion the flow
reproduces under that crop, R^2), and compensation is refused with one line when it does not fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import cv2
import numpy as np

from facedyn.data.config import FlowCrop, HeadMotionModel
from facedyn.data.errors import DataError
from facedyn.flow.encoding import decode_flow, encode_flow
from facedyn.flow.mask import mask_flow, pixel_grid
from facedyn.flow.registration import residual_head_motion
from facedyn.landmarks import LANDMARK_SUBSET_IDXS

STABLE_MESH_POINTS: tuple[int, ...] = (168, 197, 195, 133, 362, 33, 263, 127, 234, 93, 356, 454, 323)
STABLE_POINTS = np.asarray([LANDMARK_SUBSET_IDXS.index(i) for i in STABLE_MESH_POINTS], dtype=np.intp)
# Where global_motion reads the flow: the stable points inside the face (on the outline the flow mixes the
# face's movement with the still background's).
INTERIOR_STABLE_POINTS = STABLE_POINTS[:7]
MODELS = tuple(HeadMotionModel.names())
CROPS = tuple(FlowCrop.names())
MIN_CROP_FIT = 0.3  # R^2 below this: the crop does not relate flow and landmarks (wrong ones measured <= 0): refuse
FACE_EDGE_PX = 3.0  # the mask reaches this far (flow pixels) beyond the landmarks' outline, feathered: flow
# methods smooth over a window, so the face's motion shows a little beyond its outline
BOX_SIDES = np.round(np.arange(1.0, 2.51, 0.1), 3)  # face_box sides searched: box side / landmark box side
_FIT_SAMPLES = 64  # samples with the most landmark motion used to estimate and check the crop


@dataclass(frozen=True)
class CompensationSettings:
    """What compensation needs besides the images (part of the decoded-dataset cache key)."""

    model: str  # similarity | affine
    crop: str  # frame | face_box
    refine: bool  # then take out the similarity most of the face's flow still shares
    max_magnitude: float  # flow pixels (at image_size) the encoding shows at full brightness
    image_size: int
    frame_size: Optional[tuple[float, float]]  # (width, height) of the landmarks' frame, for crop=frame
    mask: str  # face: then the flow outside the face is cleared (facedyn.flow.mask), as prepare.py does; none


@dataclass(frozen=True)
class Crop:
    """Per sample, landmark pixel x maps to flow pixel `scale * x + offset` (scale and offset (N, 2))."""

    scale: np.ndarray
    offset: np.ndarray
    box: Optional[tuple[float, float, float]] = None  # face_box: (side, centre dx, centre dy) per bbox side

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(N, P, 2) landmark pixels -> flow-image pixels."""
        return points * self.scale[:, None, :] + self.offset[:, None, :]


def frame_crop(count: int, frame_size: tuple[float, float], image_size: int) -> Crop:
    scale = np.array([image_size / frame_size[0], image_size / frame_size[1]])
    return Crop(np.tile(scale, (count, 1)), np.zeros((count, 2)))


def face_box_crop(baseline: np.ndarray, image_size: int, side: float, dx: float, dy: float) -> Crop:
    """A square box `side` times the larger side of each sample's baseline landmark box, centred dx, dy off."""
    low, high = baseline.min(axis=1), baseline.max(axis=1)
    extent = (high - low).max(axis=1)
    centre = (low + high) / 2 + np.stack([dx * extent, dy * extent], axis=1)
    scale = image_size / (side * extent)
    corner = centre - (side * extent / 2)[:, None]
    return Crop(np.stack([scale, scale], axis=1), -corner * scale[:, None], (side, dx, dy))


def _design(points: np.ndarray, model: str) -> np.ndarray:
    """Rows of the linear least-squares problem: (P, 2, k) so that design @ params = transformed points."""
    x, y = points[:, 0], points[:, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    if model == "similarity":  # x' = a x - b y + tx, y' = b x + a y + ty
        return np.stack([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)], 1)
    return np.stack([np.stack([x, y, one, zero, zero, zero], 1), np.stack([zero, zero, zero, x, y, one], 1)], 1)


def _as_matrix(params: np.ndarray, model: str) -> np.ndarray:
    if model == "similarity":
        a, b, tx, ty = params
        return np.array([[a, -b, tx], [b, a, ty]])
    return params.reshape(2, 3)


def fit_transform(source: np.ndarray, target: np.ndarray, model: str = "similarity", iterations: int = 6) -> np.ndarray:
    """2x3 matrix M with target ~ M @ [source, 1]: least squares, then reweighted (Tukey's biweight on the
    residuals' robust spread) so that a few points that moved on their own lose their say."""
    centre = source.mean(axis=0)  # conditioning: fit about the points' centre
    design = _design(source - centre, model)
    rows = design.reshape(-1, design.shape[2])
    weights = np.ones(len(source))
    for _ in range(iterations):
        w = np.sqrt(np.repeat(weights, 2))
        params, *_ = np.linalg.lstsq(rows * w[:, None], (target - centre).reshape(-1) * w, rcond=None)
        residual = np.linalg.norm(design @ params - (target - centre), axis=1)
        spread = max(1.4826 * float(np.median(residual)), 1e-3 * float(np.ptp(source, axis=0).max()) + 1e-9)
        weights = np.clip(1 - (residual / (4.685 * spread)) ** 2, 0, None) ** 2
    matrix = _as_matrix(params, model)
    # back from centred coordinates: target - c = L (source - c) + t  =>  target = L source + (t + c - L c)
    matrix[:, 2] += centre - matrix[:, :2] @ centre
    return matrix


def fit_head_motion(baseline: np.ndarray, expression: np.ndarray, model: str = "similarity") -> np.ndarray:
    """(N, 2, 3) baseline -> expression transforms of N samples, fitted on STABLE_POINTS (landmark pixels)."""
    return np.stack([fit_transform(b[STABLE_POINTS], e[STABLE_POINTS], model) for b, e in zip(baseline, expression)])


def motion_field(matrix: np.ndarray, crop_scale: np.ndarray, crop_offset: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 2) displacement, in flow pixels, of each flow-image pixel under landmark-frame `matrix`.

    With p = S x + o the crop (S diagonal), the transform in image pixels is S L S^-1 p + S t + o - S L S^-1 o.
    """
    s = np.diag(crop_scale)
    linear = s @ matrix[:, :2] @ np.linalg.inv(s)
    shift = s @ matrix[:, 2] + crop_offset - linear @ crop_offset
    return (pixel_grid(size) @ (linear - np.eye(2)).T + shift).astype(np.float32)


def face_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float32 weight: 1 on the convex hull of `points` (flow pixels), fading out beyond it."""
    mask = np.zeros((size, size), np.float32)
    hull = cv2.convexHull(np.round(points * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1.0, cv2.LINE_AA, 4)
    reach = int(round(FACE_EDGE_PX / 2))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    return cv2.GaussianBlur(mask, (0, 0), FACE_EDGE_PX / 3)


def sample_flow(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear flow (N, P, 2) at flow-image points (N, P, 2) of flows (N, H, W, 2); outside the image: 0."""
    n, height, width = flow.shape[:3]
    x, y = points[..., 0] - 0.5, points[..., 1] - 0.5  # pixel centres at +0.5
    inside = (x >= 0) & (y >= 0) & (x <= width - 1) & (y <= height - 1)
    x0 = np.clip(np.floor(x).astype(int), 0, width - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, height - 2)
    fx, fy = np.clip(x - x0, 0, 1)[..., None], np.clip(y - y0, 0, 1)[..., None]
    rows = np.arange(n)[:, None]
    top = flow[rows, y0, x0] * (1 - fx) + flow[rows, y0, x0 + 1] * fx
    bottom = flow[rows, y0 + 1, x0] * (1 - fx) + flow[rows, y0 + 1, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy) * inside[..., None]


def global_motion(flow: np.ndarray, baseline_image_points: np.ndarray) -> np.ndarray:
    """Per sample, rms flow (flow pixels) at the interior stable points' baseline positions: what the head did."""
    at = sample_flow(flow, baseline_image_points[:, INTERIOR_STABLE_POINTS])
    return np.sqrt(np.mean(np.sum(at**2, axis=-1), axis=1))


def crop_fit(flow: np.ndarray, baseline: np.ndarray, expression: np.ndarray, crop: Crop) -> float:
    """R^2 of the landmarks' displacement (mapped into the flow image) by the flow found at the landmarks."""
    displacement = (expression - baseline) * crop.scale[:, None, :]
    found = sample_flow(flow, crop.to_image(baseline))
    return 1.0 - float(np.sum((found - displacement) ** 2) / max(np.sum(displacement**2), 1e-12))


def _fit_subset(baseline: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """Rows of the samples that move their landmarks most: they say most about the crop."""
    motion = np.linalg.norm(expression - baseline, axis=2).mean(axis=1)
    return np.sort(np.argsort(-motion, kind="stable")[:_FIT_SAMPLES])


def estimate_face_box(flow: np.ndarray, baseline: np.ndarray, expression: np.ndarray, image_size: int) -> tuple[Crop, float]:
    """The face_box (side, dx, dy) under which the flow best reproduces the landmarks' motion, and its R^2.

    A scan of the side at zero offset, then a pattern search (steps halved when no neighbour is better).
    """
    def fit(box: tuple[float, float, float]) -> float:
        return crop_fit(flow, baseline, expression, face_box_crop(baseline, image_size, *box))

    best = max(((side, 0.0, 0.0) for side in BOX_SIDES), key=fit)
    best_fit, steps = fit(best), np.array([0.05, 0.05, 0.05])
    while steps[0] >= 0.005:
        neighbours = [tuple(np.add(best, sign * steps * np.eye(3)[k])) for k in range(3) for sign in (-1, 1)]
        fits = [fit(box) if BOX_SIDES[0] <= box[0] <= BOX_SIDES[-1] else -np.inf for box in neighbours]
        if max(fits) > best_fit:
            best, best_fit = neighbours[int(np.argmax(fits))], max(fits)
        else:
            steps = steps / 2
    return face_box_crop(baseline, image_size, *(round(float(v), 4) for v in best)), float(best_fit)


@dataclass
class CompensationReport:
    """What compensation did to a dataset, for the log and the run folder."""

    model: str
    crop: str
    crop_box: Optional[tuple[float, float, float]]  # face_box: side, dx, dy (fractions of the landmark box)
    crop_fit_r2: float  # share of the landmarks' motion the flow reproduces under the crop (before compensation)
    samples: int
    global_motion_before_px: float  # median over samples of global_motion, flow pixels
    global_motion_landmark_fit_px: float  # after subtracting the landmarks' transform
    global_motion_after_px: float  # after the refinement too (= the above without it)
    rotation_deg_median: float  # |rotation| of the fitted transforms
    shift_px_median: float  # |translation| at the landmarks' centre, flow pixels

    def as_dict(self) -> dict:
        return asdict(self)


def _crop_for(settings: CompensationSettings, flow: np.ndarray, baseline: np.ndarray,
              expression: np.ndarray) -> tuple[Crop, float]:
    rows = _fit_subset(baseline, expression)
    if settings.crop == "frame":
        if settings.frame_size is None:
            raise DataError("data.flow.crop=frame needs the landmarks' frame size: set data.landmarks.image_width "
                            "and data.landmarks.image_height (or data.flow.crop=face_box to estimate the crop)")
        fit = crop_fit(flow[rows], baseline[rows], expression[rows], frame_crop(len(rows), settings.frame_size, settings.image_size))
        return frame_crop(len(baseline), settings.frame_size, settings.image_size), fit
    subset, fit = estimate_face_box(flow[rows], baseline[rows], expression[rows], settings.image_size)
    return face_box_crop(baseline, settings.image_size, *subset.box), fit


def compensate_images(images: np.ndarray, baseline: np.ndarray, expression: np.ndarray,
                      settings: CompensationSettings) -> CompensationReport:
    """Remove the fitted head motion from flow images (N, H, W, 3) uint8 RGB in place; DataError when the
    crop does not relate the flow images to the landmarks."""
    if settings.model not in MODELS:
        raise DataError(f"data.flow.head_motion_model={settings.model!r} is not one of: {', '.join(MODELS)}")
    if settings.crop not in CROPS:
        raise DataError(f"data.flow.crop={settings.crop!r} is not one of: {', '.join(CROPS)}")
    size = settings.image_size
    flow = np.stack([decode_flow(image, settings.max_magnitude) for image in images]) if len(images) else np.zeros((0, size, size, 2), np.float32)
    crop, fit = _crop_for(settings, flow, baseline, expression)
    if not fit >= MIN_CROP_FIT:
        where = f"face_box side {crop.box[0]:g}, offset ({crop.box[1]:g}, {crop.box[2]:g})" if crop.box else "the whole frame"
        raise DataError(
            f"data.flow.compensate_head_motion: the flow images do not line up with the landmarks (crop {where} "
            f"reproduces {fit:.0%} of their motion, need {MIN_CROP_FIT:.0%}); check data.flow.crop, "
            f"data.flow.max_magnitude and data.landmarks, or leave compensation off")
    matrices = fit_head_motion(baseline, expression, settings.model)
    image_points = crop.to_image(baseline)
    before = global_motion(flow, image_points)
    masks = [face_mask(points, size)[..., None] for points in image_points]
    for i in range(len(images)):
        flow[i] -= motion_field(matrices[i], crop.scale[i], crop.offset[i], size) * masks[i]
    landmark_fit = global_motion(flow, image_points)
    for i in range(len(images)):
        if settings.refine:  # the flow measures the motion more finely than a dozen jittery landmarks
            flow[i] -= residual_head_motion(flow[i], image_points[i]) * masks[i]
        flow[i] = mask_flow(flow[i], image_points[i], settings.mask)
        images[i] = encode_flow(flow[i], settings.max_magnitude)
    after = global_motion(flow, image_points)
    centre = baseline[:, STABLE_POINTS].mean(axis=1)
    moved = np.einsum("nij,nj->ni", matrices[:, :, :2], centre) + matrices[:, :, 2] - centre
    rotation = np.degrees(np.abs(np.arctan2(matrices[:, 1, 0] - matrices[:, 0, 1], matrices[:, 0, 0] + matrices[:, 1, 1])))
    median = (lambda v: float(np.median(v)) if len(v) else 0.0)
    return CompensationReport(
        settings.model, settings.crop, crop.box, round(fit, 4), len(images), round(median(before), 4),
        round(median(landmark_fit), 4), round(median(after), 4), round(median(rotation), 3), round(median(np.linalg.norm(moved * crop.scale, axis=1)), 3))
