"""Graph-based interpolation (vaelab.evaluation.graph_interp, Klushyn et al. Sec. 2.3): known paths and Dijkstra."""
import math

import networkx as nx
import numpy as np
import pytest

from vaelab.evaluation.graph_interp import graph_interpolation, knn_graph, resample_polyline, straight_line


def test_knn_graph_edges_and_weights():
    pts = np.array([[0.0, 0], [1, 0], [3, 0], [7, 0]])
    g = knn_graph(pts, k=1)
    # nearest of 0 is 1, of 1 is 0, of 2 is 1, of 3 is 2 -> edges {0-1, 1-2, 2-3}
    assert sorted(tuple(sorted(e)) for e in g.edges) == [(0, 1), (1, 2), (2, 3)]
    assert g[2][3]["weight"] == pytest.approx(4.0)
    assert knn_graph(np.random.default_rng(0).normal(size=(50, 2)), k=18).degree[0] >= 18


def test_path_on_a_hand_made_graph():
    """A zigzag chain with k = 1: the graph is the chain itself, so the path visits the points in order and
    its length is the sum of the legs."""
    pts = np.array([[1.0, 0], [2, 0.5], [3, 0], [4, 0.5], [5, 0]])
    path = graph_interpolation(pts, [0.0, 0.5], [6.0, 0.5], k=1)
    np.testing.assert_allclose(path.codes, [[0, 0.5], *pts.tolist(), [6, 0.5]])
    assert path.length == pytest.approx(6 * math.sqrt(1.25))
    # with more neighbours the A* path may cut corners, but is never longer than the chain and never
    # shorter than the straight line
    path4 = graph_interpolation(pts, [0.0, 0.5], [6.0, 0.5], k=4)
    assert 6.0 <= path4.length <= 6 * math.sqrt(1.25) + 1e-12


def test_path_goes_around_a_hole_and_equals_dijkstra():
    """Samples on an annulus: the straight line between opposite points crosses the empty disc, the graph
    path stays on the ring; A* returns a shortest path (the same length as networkx's Dijkstra)."""
    rng = np.random.default_rng(1)
    ang = rng.uniform(0, 2 * math.pi, 1000)
    rad = rng.uniform(1.8, 2.2, 1000)
    pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
    start, end = np.array([2.0, 0.0]), np.array([-2.0, 0.0])
    path = graph_interpolation(pts, start, end, k=18)
    assert np.linalg.norm(path.codes, axis=1).min() > 1.7
    n = len(pts)
    assert path.nodes[0] == n and path.nodes[-1] == n + 1
    dij = nx.dijkstra_path_length(path.graph, n, n + 1, weight="weight")
    assert path.length == pytest.approx(dij, rel=1e-12)
    assert path.length > math.pi * 1.8       # half the inner circumference at least
    line = straight_line(start, end, 21)
    assert np.linalg.norm(line, axis=1).min() < 0.2


def test_resample_polyline_is_even_in_arc_length():
    poly = np.array([[0.0, 0], [1, 0], [1, 3]])
    r = resample_polyline(poly, 5)
    np.testing.assert_allclose(r, [[0, 0], [1, 0], [1, 1], [1, 2], [1, 3]], atol=1e-12)
    np.testing.assert_allclose(straight_line([0, 0], [2, 4], 3), [[0, 0], [1, 2], [2, 4]])


def test_disconnected_graph_and_bad_inputs():
    pts = np.array([[0.0, 0], [0.1, 0], [10, 0], [10.1, 0]])
    with pytest.raises(ValueError, match="does not connect"):
        graph_interpolation(pts, [0.0, 0.05], [10.05, 0.0], k=1)
    with pytest.raises(ValueError, match="k must be"):
        knn_graph(pts, k=4)
    with pytest.raises(ValueError, match="coordinates"):
        graph_interpolation(pts, [0.0, 0.0, 0.0], [1.0, 0.0], k=1)
