"""The mirror permutation agrees with MediaPipe's canonical mesh and the portrait's iris layout."""

import numpy as np
from scipy.spatial import cKDTree

from facedyn.landmarks import LANDMARK_SUBSET_IDXS, SUBSET_MIRROR_PERMUTATION
from tests.mediapipe_fixtures import read_landmarks


def test_mirror_permutation_is_an_involution():
    perm = np.asarray(SUBSET_MIRROR_PERMUTATION)
    assert (perm[perm] == np.arange(len(perm))).all()


def test_mirror_permutation_matches_canonical_mesh(mediapipe_fixtures):
    obj = mediapipe_fixtures / "canonical_face_model.obj"
    vertices = np.array([[float(t) for t in line.split()[1:4]] for line in obj.read_text().splitlines()
                         if line.startswith("v ")])
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    distance, partner = cKDTree(vertices).query(mirrored)
    assert distance.max() < 1e-4  # the canonical mesh is exactly symmetric
    position = {mesh_index: i for i, mesh_index in enumerate(LANDMARK_SUBSET_IDXS)}
    for i, mesh_index in enumerate(LANDMARK_SUBSET_IDXS):
        if mesh_index < len(vertices):
            assert SUBSET_MIRROR_PERMUTATION[i] == position[partner[mesh_index]]


def test_mirrored_portrait_lands_on_itself(mediapipe_fixtures):
    # A near-frontal real face, mirrored about its midline and permuted, should land close to itself;
    # this checks the iris points too, which the canonical mesh lacks.
    points = read_landmarks(mediapipe_fixtures / "face_blendshapes_in_landmarks.prototxt", 820, 1024)
    subset = points[list(LANDMARK_SUBSET_IDXS)]
    midline = subset[:, 0].mean()
    mirrored = subset.copy()
    mirrored[:, 0] = 2 * midline - mirrored[:, 0]
    mirrored = mirrored[list(SUBSET_MIRROR_PERMUTATION)]
    face_width = np.ptp(subset[:, 0])
    error = np.linalg.norm(mirrored - subset, axis=1)
    assert np.median(error) < 0.03 * face_width
    iris = slice(136, 146)
    assert error[iris].max() < 0.05 * face_width
    # An identity "permutation" is far worse: the test can tell right from wrong.
    unpermuted = subset.copy()
    unpermuted[:, 0] = 2 * midline - unpermuted[:, 0]
    assert np.median(np.linalg.norm(unpermuted - subset, axis=1)) > 3 * np.median(error)
