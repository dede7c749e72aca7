"""Graph-based interpolation in latent space (Klushyn et al. 2019, Sec. 2.3, Figs. 3-4; chapter 04).

A straight line between two codes may cross regions where the prior has no mass, and decode to images
that are not on the data manifold. Klushyn et al. instead:

1. draw N samples z_n ~ p(z) from the learned prior (they use N = 1,000 for the pendulum);
2. connect every sample to its k nearest neighbours (k = 18), with the Euclidean distance as the edge
   weight: a graph whose edges stay where the prior has mass;
3. add the two encoded end points as nodes, each joined to its k nearest samples;
4. take the shortest path between them with A* (the straight-line distance to the goal is an admissible
   heuristic, so A* returns a shortest path, as Dijkstra would, visiting fewer nodes);
5. decode the codes along the path.

``graph_interpolation`` does 2-4 and returns the path's codes; ``resample_polyline`` spaces any path
evenly by arc length, so that a graph path and a straight line can be compared with the same number of
decoded images (``vaelab.evaluation.angle.max_angle_jump`` then measures how smooth the decoded sequence is).
"""
from __future__ import annotations

from typing import NamedTuple

import networkx as nx
import numpy as np
import torch

__all__ = ["knn_graph", "GraphPath", "graph_interpolation", "straight_line", "resample_polyline"]


def _points(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"{name} must be an array (N, d) with N >= 2, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def _point(x, name: str, d: int) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.shape != (d,) or not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be a finite point with {d} coordinates, got {x}")
    return x


def _nearest(points: np.ndarray, queries: np.ndarray, k: int, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((queries[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return idx, np.sqrt(np.take_along_axis(d2, idx, 1))


def knn_graph(points, k: int = 18) -> nx.Graph:
    """Undirected graph on ``points`` (N, d): node n at ``points[n]`` (attribute ``pos``), an edge from each
    node to each of its ``k`` nearest other nodes (union over both directions), weight = Euclidean distance."""
    pts = _points(points, "points")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < len(pts):
        raise ValueError(f"k must be an integer in 1..{len(pts) - 1} (neighbours per node), got {k!r}")
    idx, dist = _nearest(pts, pts, k, exclude_self=True)
    g = nx.Graph()
    for n, p in enumerate(pts):
        g.add_node(n, pos=p)
    for n in range(len(pts)):
        for m, w in zip(idx[n], dist[n]):
            g.add_edge(n, int(m), weight=float(w))
    return g


class GraphPath(NamedTuple):
    """``codes`` (m, d) along the path from start to end (both included), the graph ``nodes`` visited
    (start = N, end = N + 1, samples 0..N-1), the path ``length`` (sum of edge weights) and the ``graph``."""

    codes: np.ndarray
    nodes: list
    length: float
    graph: nx.Graph


def graph_interpolation(samples, start, end, k: int = 18) -> GraphPath:
    """The A* shortest path from ``start`` to ``end`` through the k-NN graph of prior ``samples`` (N, d).

    The end points become nodes N (start) and N + 1 (end), each joined to its ``k`` nearest samples.
    Raises ``ValueError`` when the graph does not connect them (use more samples or a larger k).
    """
    pts = _points(samples, "samples")
    s, e = _point(start, "start", pts.shape[1]), _point(end, "end", pts.shape[1])
    g = knn_graph(pts, k)
    n = len(pts)
    idx, dist = _nearest(pts, np.stack([s, e]), k, exclude_self=False)
    for node, p, nbrs, ds in ((n, s, idx[0], dist[0]), (n + 1, e, idx[1], dist[1])):
        g.add_node(node, pos=p)
        for m, w in zip(nbrs, ds):
            g.add_edge(node, int(m), weight=float(w))
    pos = nx.get_node_attributes(g, "pos")

    def heuristic(a, b):  # straight-line distance: never overestimates a path length, so A* is exact
        return float(np.linalg.norm(pos[a] - pos[b]))

    try:
        nodes = nx.astar_path(g, n, n + 1, heuristic=heuristic, weight="weight")
    except nx.NetworkXNoPath:
        raise ValueError(f"the k-NN graph (k={k}, {n} samples) does not connect the two end points: "
                         "draw more prior samples or raise k") from None
    codes = np.stack([pos[v] for v in nodes])
    length = float(sum(g[a][b]["weight"] for a, b in zip(nodes[:-1], nodes[1:])))
    return GraphPath(codes, nodes, length, g)


def straight_line(start, end, n: int) -> np.ndarray:
    """``n`` evenly spaced codes from ``start`` to ``end`` (both included): (n, d)."""
    s = np.asarray(start.detach().cpu().double() if isinstance(start, torch.Tensor) else start, dtype=np.float64).reshape(-1)
    e = _point(end, "end", len(s))
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) * s[None] + t * e[None]


def resample_polyline(path, n: int) -> np.ndarray:
    """``n`` points spaced evenly by arc length along the polyline ``path`` (m, d), end points included."""
    pts = _points(path, "path")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] == 0:
        return np.repeat(pts[:1], n, axis=0)
    targets = np.linspace(0.0, cum[-1], n)
    out = np.empty((n, pts.shape[1]))
    for j in range(pts.shape[1]):
        out[:, j] = np.interp(targets, cum, pts[:, j])
    return out
