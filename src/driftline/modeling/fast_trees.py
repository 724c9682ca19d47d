"""A fitted HistGradientBoosting model's trees as flat numpy tables: `_raw_predict`, bit for bit, without one Python
call per tree.

HGB's own prediction calls its Cython predictor once per tree (150 calls for the demo model), which costs ~1 ms on
one row. Here every split of every tree is decided at once: per tree, the masks of the nodes that sent the row right
are AND-ed and the lowest leaf left is the exit leaf (the QuickScorer method: a fixed dozen array operations whatever
the depth); a tree of more than 64 leaves is walked level by level instead. The comparisons are scikit-learn's
(`x <= threshold` goes left; NaN goes to the node's missing side) and the leaf values are summed in its order
(baseline, then iteration by iteration), so the sums are the same floats. This reads HGB's private fitted state
(`_predictors`, `_baseline_prediction`); `fast.compile_pipeline` checks the result against `_raw_predict` before use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HGB_TYPES = {"HistGradientBoostingClassifier", "HistGradientBoostingRegressor"}
ALL_LEAVES = np.uint64(0xFFFFFFFFFFFFFFFF)
MAX_BIT_LEAVES = 64  # one uint64 of leaves per tree


class NotReproducible(Exception):
    """Why the fast path cannot answer for this model as scikit-learn does (the pipeline answers instead)."""


def require(condition: bool, reason: str) -> None:
    if not condition:
        raise NotReproducible(reason)


@dataclass(frozen=True)
class BitTables:
    """Per interior node, the leaves still possible when it sends a row right; per tree, its leaves' values."""

    feature: np.ndarray  # (interior nodes,) intp
    threshold: np.ndarray  # (interior nodes,) float64
    missing_left: np.ndarray  # (interior nodes,) bool
    mask: np.ndarray  # (interior nodes,) uint64: every leaf but those under the node's left child
    tree_start: np.ndarray  # (trees,) first interior node of each tree
    leaf_value: np.ndarray  # leaves left to right, tree after tree
    leaf_offset: np.ndarray  # (trees,) first leaf of each tree


@dataclass(frozen=True)
class WalkTables:
    """All nodes of all trees in one table; a leaf's children are itself, so extra levels leave a row in place."""

    roots: np.ndarray  # (trees,) intp
    feature: np.ndarray  # (nodes,) intp
    threshold: np.ndarray  # (nodes,) float64, +inf at leaves
    children: np.ndarray  # (nodes * 2,) intp: left, right
    missing_left: np.ndarray  # (nodes,) bool
    value: np.ndarray  # (nodes,) float64
    depth: int


@dataclass(frozen=True)
class CompiledTrees:
    """`raw(X)` equals `estimator._raw_predict(X)` for the estimator it was compiled from."""

    tables: BitTables | WalkTables
    n_iter: int
    per_iteration: int  # trees per iteration: one per class for a multiclass model, else one
    baseline: np.ndarray  # (per_iteration,)

    def raw(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        values = _bit_leaf_values(self.tables, X) if isinstance(self.tables, BitTables) else _walk(self.tables, X)
        stacked = np.empty((n, self.n_iter + 1, self.per_iteration))
        stacked[:, 0, :] = self.baseline
        stacked[:, 1:, :] = values.reshape(n, self.n_iter, self.per_iteration)
        return np.cumsum(stacked, axis=1)[:, -1, :]  # sequential, as HGB adds: ((baseline + v1) + v2) + ...


def compile_trees(estimator: object) -> CompiledTrees:
    """The trees of a fitted HistGradientBoosting classifier or regressor (NotReproducible when it cannot be)."""
    require(type(estimator).__name__ in HGB_TYPES, "not a HistGradientBoosting model")
    require(getattr(estimator, "is_categorical_", None) is None, "HGB with native categorical features")
    require(getattr(estimator, "_preprocessor", None) is None, "HistGradientBoosting with its own preprocessor")
    predictors = estimator._predictors  # type: ignore[attr-defined]
    per_iteration = estimator.n_trees_per_iteration_  # type: ignore[attr-defined]
    require(all(len(iteration) == per_iteration for iteration in predictors), "iterations of unequal tree counts")
    trees = [predictor.nodes for iteration in predictors for predictor in iteration]  # iteration-major, as summed
    require(not any(nodes["is_categorical"].any() for nodes in trees), "a categorical split")
    baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)  # type: ignore[attr-defined]
    require(baseline.shape == (per_iteration,), "unexpected baseline shape")
    tables = _bit_tables(trees) if all(_leaf_count(nodes) <= MAX_BIT_LEAVES for nodes in trees) else _walk_tables(trees)
    return CompiledTrees(tables, len(predictors), per_iteration, baseline)


def _leaf_count(nodes: np.ndarray) -> int:
    return int(nodes["is_leaf"].sum())


def _leaves_in_order(nodes: np.ndarray) -> list[int]:
    """Leaf node indices left to right (depth first, left child first)."""
    order, stack = [], [0]
    while stack:
        i = stack.pop()
        if nodes[i]["is_leaf"]:
            order.append(i)
        else:
            stack += [int(nodes[i]["right"]), int(nodes[i]["left"])]
    return order


def _bit_tables(trees: list[np.ndarray]) -> BitTables:
    feature: list[int] = []
    threshold: list[float] = []
    missing_left: list[bool] = []
    mask: list[int] = []
    tree_start: list[int] = []
    leaf_value: list[float] = []
    leaf_offset: list[int] = []
    for nodes in trees:
        leaves = _leaves_in_order(nodes)
        rank = {node: position for position, node in enumerate(leaves)}
        below = [0] * len(nodes)  # bits of the leaves under each node
        for i in _post_order(nodes):  # children before parents
            leaf = nodes[i]["is_leaf"]
            below[i] = 1 << rank[i] if leaf else below[int(nodes[i]["left"])] | below[int(nodes[i]["right"])]
        tree_start.append(len(feature))
        leaf_offset.append(len(leaf_value))
        leaf_value += [float(nodes[i]["value"]) for i in leaves]
        interior = [i for i in range(len(nodes)) if not nodes[i]["is_leaf"]]
        if not interior:  # a one-leaf tree: one node that never rules its leaf out
            feature.append(0), threshold.append(np.inf), missing_left.append(False), mask.append(int(ALL_LEAVES))
        for i in interior:
            feature.append(int(nodes[i]["feature_idx"]))
            threshold.append(float(nodes[i]["num_threshold"]))
            missing_left.append(bool(nodes[i]["missing_go_to_left"]))
            mask.append(~below[int(nodes[i]["left"])] & int(ALL_LEAVES))
    return BitTables(
        np.asarray(feature, dtype=np.intp),
        np.asarray(threshold, dtype=np.float64),
        np.asarray(missing_left, dtype=bool),
        np.asarray(mask, dtype=np.uint64),
        np.asarray(tree_start, dtype=np.intp),
        np.asarray(leaf_value, dtype=np.float64),
        np.asarray(leaf_offset, dtype=np.intp),
    )


def _post_order(nodes: np.ndarray) -> list[int]:
    order, stack = [], [0]
    while stack:  # parents before children, reversed at the end
        i = stack.pop()
        order.append(i)
        if not nodes[i]["is_leaf"]:
            stack += [int(nodes[i]["left"]), int(nodes[i]["right"])]
    return order[::-1]


def _bit_leaf_values(tables: BitTables, X: np.ndarray) -> np.ndarray:
    """(rows, trees) exit-leaf values: every split decided at once, masks AND-ed per tree, lowest set bit = exit."""
    x = X[:, tables.feature]
    go_right = ~(x <= tables.threshold)  # NaN compares False, so goes right ...
    missing = np.isnan(x)
    if missing.any():  # ... unless the node sends missing values left
        go_right &= ~(missing & tables.missing_left)
    alive = np.bitwise_and.reduceat(np.where(go_right, tables.mask, ALL_LEAVES), tables.tree_start, axis=1)
    lowest = alive & (~alive + np.uint64(1))  # the lowest set bit alone: a power of two
    rank = np.frexp(lowest.astype(np.float64))[1] - 1  # its position, exactly (powers of two are exact floats)
    return tables.leaf_value[tables.leaf_offset + rank]


def _walk_tables(trees: list[np.ndarray]) -> WalkTables:
    roots, feature, threshold, children, missing_left, value = [], [], [], [], [], []
    offset, depth = 0, 0
    for nodes in trees:
        leaf = nodes["is_leaf"].astype(bool)
        own = np.arange(offset, offset + len(nodes))
        roots.append(offset)
        feature.append(np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp))
        threshold.append(np.where(leaf, np.inf, nodes["num_threshold"]).astype(np.float64))
        left = np.where(leaf, own, nodes["left"].astype(np.intp) + offset)
        right = np.where(leaf, own, nodes["right"].astype(np.intp) + offset)
        children.append(np.stack([left, right], axis=1))
        missing_left.append(nodes["missing_go_to_left"].astype(bool))
        value.append(nodes["value"].astype(np.float64))
        depth = max(depth, int(nodes["depth"].max()))
        offset += len(nodes)
    return WalkTables(
        np.asarray(roots, dtype=np.intp),
        np.concatenate(feature),
        np.concatenate(threshold),
        np.ascontiguousarray(np.concatenate(children)).ravel(),
        np.concatenate(missing_left),
        np.concatenate(value),
        depth,
    )


def _walk(tables: WalkTables, X: np.ndarray) -> np.ndarray:
    """(rows, trees) exit-leaf values: all rows and trees walked together, one level per step."""
    n, width = X.shape
    node = np.broadcast_to(tables.roots, (n, len(tables.roots))).copy()
    flat = X.ravel()
    row_start = (np.arange(n, dtype=np.intp) * width)[:, None]
    has_missing = bool(np.isnan(X).any())
    for _ in range(tables.depth):
        x = flat[row_start + tables.feature[node]]
        go_right = ~(x <= tables.threshold[node])
        if has_missing:
            go_right &= ~(np.isnan(x) & tables.missing_left[node])
        node = tables.children[2 * node + go_right]
    return tables.value[node]
