"""Landmark conventions shared by the blendshape model, the data layer and the synthetic generator.

The constants below are MediaPipe's (face_blendshapes_graph.cc, Apache-2.0): the 146 of the 478
face-mesh landmarks that the blendshape model reads, in the order it reads them, and the names of
its 52 outputs.
"""

from __future__ import annotations

NUM_MESH_LANDMARKS = 478
NUM_SUBSET_LANDMARKS = 146
NUM_BLENDSHAPES = 52

# MediaPipe's kLandmarksSubsetIdxs: indices into the 478-point face mesh (468 mesh + 10 iris points).
LANDMARK_SUBSET_IDXS: tuple[int, ...] = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39,
    40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78, 80,
    81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133,
    136, 144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160,
    161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246,
    249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295,
    296, 297, 300, 308, 310, 311, 312, 314, 317, 318, 321, 323, 324, 332, 334,
    336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382,
    384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454,
    466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477,
)

# MediaPipe's kBlendshapeNames, in the model's output order.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)

assert len(LANDMARK_SUBSET_IDXS) == NUM_SUBSET_LANDMARKS
assert len(BLENDSHAPE_NAMES) == NUM_BLENDSHAPES

# Left/right correspondence of the 146 subset points: a mirrored face's point i is the original's point
# SUBSET_MIRROR_PERMUTATION[i]. Derived from MediaPipe's canonical face mesh (each vertex paired with the
# vertex at its x-mirrored position) and, for the iris points (centre, +x, top, -x, bottom per eye), from
# the order seen in MediaPipe's portrait test vector. An involution; tests/test_landmarks.py re-derives it.
SUBSET_MIRROR_PERMUTATION: tuple[int, ...] = (
    0, 1, 2, 3, 4, 75, 6, 7, 8, 9, 10, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91,
    92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113,
    114, 115, 116, 52, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 63, 127, 128, 129, 130, 131, 132,
    133, 71, 72, 134, 135, 5, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
    30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 64, 65, 66, 67, 68, 69, 70, 73, 74, 141, 144, 143, 142, 145, 136, 139,
    138, 137, 140,
)

assert sorted(SUBSET_MIRROR_PERMUTATION) == list(range(NUM_SUBSET_LANDMARKS))
