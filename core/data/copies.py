"""Copies of a photo inside a dataset: byte-identical files and near-copies, as confirmed PAIRS.

A near-copy is the same photo resized, recompressed, slightly cropped, brightened or turned;
another photo of the same kind of thing (two leaves on white paper, two fundus photos on
black) is not one. Two steps, so that the work grows with the number of photos, not with
the number of pairs:

1. Candidates (never all pairs): the same sha1; the K_LAYOUT nearest neighbours by a small
   grey layout descriptor (the cells of an 8x8 grid inside the centre disc, zero mean, unit norm); pHash neighbours within
   PHASH_CANDIDATE_BITS bits, found by multi-index hashing (9 exact-match pieces of the hash).
2. Confirmation: band-pass (difference of Gaussians) of a grey thumbnail of the centre
   square, normalised correlation inside a centre disc, best over ZOOMS x ANGLES alignments;
   (a) at 64 px >= CONFIRM_SIMILARITY, then (b) at 128 px >= FINE_SIMILARITY, so that two
   photos alike only in outline (two leaves of one shape on white paper) are not a copy: the
   finer texture (veins, lesions, vessels) must match too. Band-pass removes the plain
   backgrounds that made distinct photos look alike to pHash. The thresholds were tuned with
   bench/bench_duplicates.py on the shared sets. The similarity reported is the lower score.

Thumbnails (both sizes, core/data/thumbs.py) are cached by sha1 in `<workspace>/cache/thumbs.sqlite`,
and the confirmed pairs of a set of photos (keyed by every path, sha1, class and split and the
settings) in `<workspace>/cache/pairs.sqlite` (PairsCache): the Data page's check, the training
run's and `latih data check` of the same photos pay for them once.
`find_pairs(df)` returns one row per confirmed pair (PAIR_COLUMNS); nothing here chains pairs
into groups except `group_ids`, which the split uses to keep copies on one side.
"""
from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from functools import lru_cache

import cv2
import numpy as np
import pandas as pd

from core.data.cachedb import CacheDB
from core.data.thumbs import FINE, THUMB, thumbnails
from core.workspace import workspace_dir

logger = logging.getLogger(__name__)

K_LAYOUT = 5                    # layout neighbours per photo
PHASH_CANDIDATE_BITS = 8        # pHash bits (of 64) that may differ for a candidate
CONFIRM_SIMILARITY = 0.90       # 64 px band-pass correlation (sigmas 1 and 5 px) a near-copy reaches
FINE_SIMILARITY = 0.85          # 128 px band-pass correlation (sigmas 1 and 3 px) it must also reach
ZOOMS = (1 / 0.9, 1.0, 0.9)
ANGLES = (-5.0, 0.0, 5.0)
BANDS = {THUMB: (1.0, 5.0), FINE: (1.0, 3.0)}  # difference-of-Gaussians sigmas per thumbnail side
DISC_SHARE = 26 / 64            # correlation inside a centre disc of this radius: warped borders stay outside
MAX_IDENTICAL_GROUP = 50        # beyond this many identical files, pair each with the first only
CHUNK = 1024
PLAIN_BLOCK_BYTES = 256 << 20  # left photos' vectors held at once in similarity()

PAIR_COLUMNS = ["file_a", "file_b", "class_a", "class_b", "split_a", "split_b", "similarity", "kind", "scope"]
KINDS = ("identical", "near")
SCOPES = ("across_classes", "across_splits", "within_class")

# ---------------------------------------------------------------- candidates


def layout_descriptors(thumbs: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """(n, d) float32: the grey layout on an 8x8 grid, only the cells inside the centre disc
    (so the black corners of a turned copy do not count), zero mean, unit norm (flat -> zeros).
    Computed in chunks, so memory stays small for 50,000 photos."""
    cell = THUMB // 8
    weights = DISC.reshape(8, cell, 8, cell).mean(axis=(1, 3))
    inside = weights.ravel() >= 0.99
    disc = DISC.astype(np.uint16)
    out = np.zeros((len(thumbs), int(inside.sum())), dtype=np.float32)
    for start in range(0, len(thumbs), chunk):
        part = thumbs[start:start + chunk].astype(np.uint16) * disc
        sums = part.reshape(len(part), 8, cell, 8, cell).sum(axis=(2, 4), dtype=np.uint32).reshape(len(part), 64)
        out[start:start + chunk] = sums[:, inside] / (cell * cell)
    out -= out.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norm, out=np.zeros_like(out), where=norm > 1e-6)


def layout_pairs(desc: np.ndarray, k: int = K_LAYOUT, block: int = 256) -> np.ndarray:
    """(m, 2) pairs i < j: each row with its k most similar rows by layout. Exact search by
    matrix products in blocks (memory stays bounded); the one step whose work grows with
    n^2, but at 24 numbers per photo it is a few seconds of BLAS per 10,000 photos.
    The k nearest are taken by k passes of argmax, not argpartition: for k = 5 that is ~10x
    faster (argpartition was 25 of the check's 102 s at 50,000 photos); only exact ties may
    pick another, equally near, neighbour."""
    n = len(desc)
    k = min(k, n - 1)
    if k <= 0:
        return np.empty((0, 2), dtype=np.int64)
    found = []
    for start in range(0, n, block):
        sims = desc[start:start + block] @ desc.T
        rows = np.arange(start, min(start + block, n))
        local = rows - start
        sims[local, rows] = -np.inf
        nearest = np.empty((len(rows), k), dtype=np.int64)
        for rank in range(k):
            nearest[:, rank] = sims.argmax(axis=1)
            sims[local, nearest[:, rank]] = -np.inf
        found.append(np.stack([np.repeat(rows, k), nearest.ravel()], axis=1))
    return _unique_pairs(np.concatenate(found))


def phash_words(hashes) -> tuple[np.ndarray, np.ndarray]:
    """(rows with a hash, their 64-bit pHash as uint64)."""
    rows = np.array([i for i, h in enumerate(hashes) if isinstance(h, str) and len(h) == 16], dtype=np.int64)
    words = np.array([int(hashes[i], 16) for i in rows], dtype=np.uint64)
    return rows, words


def phash_pairs(hashes, max_bits: int = PHASH_CANDIDATE_BITS) -> np.ndarray:
    """(m, 2) row pairs whose pHashes differ in at most max_bits bits, by multi-index hashing:
    cut the 64 bits into max_bits + 1 pieces; two hashes that close agree exactly on one piece."""
    rows, words = phash_words(hashes)
    if len(rows) < 2:
        return np.empty((0, 2), dtype=np.int64)
    pieces = max_bits + 1
    edges = np.linspace(0, 64, pieces + 1).astype(int)
    found = []
    for low, high in zip(edges[:-1], edges[1:]):
        key = (words >> np.uint64(low)) & np.uint64((1 << (high - low)) - 1)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        bounds = np.flatnonzero(np.diff(sorted_key)) + 1
        for bucket in np.split(order, bounds):
            if len(bucket) < 2:
                continue
            for start in range(0, len(bucket), CHUNK):
                part = bucket[start:start + CHUNK]
                dist = np.bitwise_count(words[part, None] ^ words[None, bucket])
                i, j = np.nonzero(dist <= max_bits)
                a, b = part[i], bucket[j]
                keep = a < b
                found.append(np.stack([rows[a[keep]], rows[b[keep]]], axis=1))
    return _unique_pairs(np.concatenate(found)) if found else np.empty((0, 2), dtype=np.int64)


def sha1_pairs(sha1s) -> np.ndarray:
    """(m, 2) pairs of rows with the same (non-empty) sha1: all pairs of a small group, a star in a big one."""
    table = pd.DataFrame({"sha1": list(sha1s)})
    table = table[table["sha1"].astype(str) != ""]
    found = []
    for _, members in table.groupby("sha1").groups.items():
        members = np.asarray(members)
        if len(members) < 2:
            continue
        if len(members) <= MAX_IDENTICAL_GROUP:
            i, j = np.triu_indices(len(members), 1)
            found.append(np.stack([members[i], members[j]], axis=1))
        else:
            found.append(np.stack([np.full(len(members) - 1, members[0]), members[1:]], axis=1))
    return _unique_pairs(np.concatenate(found)) if found else np.empty((0, 2), dtype=np.int64)


def _unique_pairs(pairs: np.ndarray) -> np.ndarray:
    if not len(pairs):
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(pairs.astype(np.int64), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)


def candidate_pairs(df: pd.DataFrame, thumbs: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Layout and pHash neighbours among the rows with a thumbnail (identical files excluded)."""
    rows = np.flatnonzero(ok)
    layout = rows[layout_pairs(layout_descriptors(thumbs[rows]))] if len(rows) > 1 else np.empty((0, 2), np.int64)
    hashes = [h if ok[i] else "" for i, h in enumerate(df["phash"].astype(str))]
    pairs = _unique_pairs(np.concatenate([layout, phash_pairs(hashes)]))
    sha1 = df["sha1"].astype(str).to_numpy()
    return pairs[sha1[pairs[:, 0]] != sha1[pairs[:, 1]]] if len(pairs) else pairs


# ---------------------------------------------------------------- confirmation


def _disc(size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2
    return ((yy - centre) ** 2 + (xx - centre) ** 2) <= (DISC_SHARE * size) ** 2


DISC = _disc(THUMB)
_DISCS = {THUMB: DISC, FINE: _disc(FINE)}


def band_pass(thumb: np.ndarray) -> np.ndarray:
    fine, coarse = BANDS[thumb.shape[0]]
    grey = thumb.astype(np.float32)
    return cv2.GaussianBlur(grey, (0, 0), fine) - cv2.GaussianBlur(grey, (0, 0), coarse)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = vectors - vectors.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norm, out=np.zeros_like(vectors), where=norm > 1e-3)


@lru_cache(maxsize=None)
def _warps(size: int) -> tuple:
    """The ZOOMS x ANGLES affine matrices for a thumbnail side (None = the identity: no warp)."""
    centre = ((size - 1) / 2, (size - 1) / 2)
    return tuple(None if (zoom, angle) == (1.0, 0.0) else cv2.getRotationMatrix2D(centre, angle, zoom)
                 for zoom in ZOOMS for angle in ANGLES)


def _aligned(thumb: np.ndarray) -> np.ndarray:
    """(len(ZOOMS) * len(ANGLES), disc pixels): unit vectors of the band-passed thumbnail, warped."""
    size = thumb.shape[0]
    passed = band_pass(thumb)
    disc = _DISCS[size]
    out = [passed[disc] if matrix is None else
           cv2.warpAffine(passed, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)[disc]
           for matrix in _warps(size)]
    return _unit(np.stack(out))


def similarity(thumbs: np.ndarray, pairs: np.ndarray, progress=None) -> np.ndarray:
    """Best band-pass correlation of each pair (i, j) over the alignments of j (1.0 = same photo).

    Each left photo's band-passed vector is made once (a photo is in ~7 pairs at 50,000 photos:
    redoing it per pair was half of this step), held for a block of left photos of at most
    PLAIN_BLOCK_BYTES, so memory stays bounded whatever the number of photos; within a block
    the pairs go by right photo, whose 9 alignments are made once per chunk."""
    scores = np.zeros(len(pairs), dtype=np.float32)
    if not len(pairs):
        return scores
    disc = _DISCS[thumbs.shape[1]]
    chunk_size = CHUNK * THUMB * THUMB // (thumbs.shape[1] ** 2)
    lefts = np.unique(pairs[:, 0])
    block_rows = max(1, PLAIN_BLOCK_BYTES // (4 * int(disc.sum())))
    done = 0
    for first in range(0, len(lefts), block_rows):
        members = lefts[first:first + block_rows]
        plain = _plain_vectors(thumbs, members, disc)
        in_block = np.flatnonzero((pairs[:, 0] >= members[0]) & (pairs[:, 0] <= members[-1]))
        order = in_block[np.argsort(pairs[in_block, 1], kind="stable")]
        for start in range(0, len(order), chunk_size):
            chunk = order[start:start + chunk_size]
            ids, where = np.unique(pairs[chunk, 1], return_inverse=True)
            warped = np.stack([_aligned(thumbs[r]) for r in ids])                    # (u, 9, d)
            left = plain[np.searchsorted(members, pairs[chunk, 0])]                  # (p, d)
            scores[chunk] = np.einsum("pd,pkd->pk", left, warped[where]).max(axis=1)
            done += len(chunk)
            if progress:
                progress(done, len(pairs))
    return scores


def _plain_vectors(thumbs: np.ndarray, rows: np.ndarray, disc: np.ndarray) -> np.ndarray:
    """(len(rows), disc pixels) float32: unit vectors of each row's band-passed thumbnail."""
    out = np.empty((len(rows), int(disc.sum())), dtype=np.float32)
    for start in range(0, len(rows), CHUNK):
        part = rows[start:start + CHUNK]
        out[start:start + len(part)] = _unit(np.stack([band_pass(thumbs[r])[disc] for r in part]))
    return out


def confirm(thumbs: np.ndarray, fine_thumbs, pairs: np.ndarray, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, confirmed) per candidate pair. Similarity is the 64 px score, and for the
    pairs that pass it the lower of that and the 128 px score; confirmed = both passed.
    `fine_thumbs(rows) -> (len(rows), 128, 128)` gives the finer thumbnails of the rows asked
    for (decoded only for those)."""
    scores = similarity(thumbs, pairs, progress)
    confirmed = np.zeros(len(pairs), dtype=bool)
    passed = np.flatnonzero(scores >= CONFIRM_SIMILARITY)
    if len(passed):
        rows, local = np.unique(pairs[passed], return_inverse=True)
        fine = similarity(fine_thumbs(rows), local.reshape(-1, 2))
        scores[passed] = np.minimum(scores[passed], fine)
        confirmed[passed] = fine >= FINE_SIMILARITY
    return scores, confirmed


# ---------------------------------------------------------------- pairs


_MEMO: OrderedDict = OrderedDict()
MEMO_SIZE = 4
PAIRS_CACHE_VERSION = 1  # bump when the candidates or the confirmation change: cached pairs are then stale


def _settings(workspace) -> str:
    """Everything besides the photos that decides which pairs are found (part of the cache key)."""
    return "/".join(map(str, (PAIRS_CACHE_VERSION, CONFIRM_SIMILARITY, FINE_SIMILARITY, K_LAYOUT,
                              PHASH_CANDIDATE_BITS, ZOOMS, ANGLES, sorted(BANDS.items()), DISC_SHARE,
                              MAX_IDENTICAL_GROUP, workspace_dir(workspace))))


def read_pairs_csv(source) -> pd.DataFrame:
    """A pair table written with to_csv read back as find_pairs returns it (names stay text, "NA" too)."""
    pairs = pd.read_csv(source, keep_default_na=False, dtype=str)
    if pairs.empty and not len(pairs.columns):
        return pd.DataFrame(columns=PAIR_COLUMNS)
    pairs["similarity"] = pd.to_numeric(pairs["similarity"])
    return pairs.reindex(columns=PAIR_COLUMNS)


class PairsCache(CacheDB):
    """sqlite table key -> the confirmed pairs as CSV, in `<workspace>/cache/pairs.sqlite`. The key
    digests every photo's path, sha1, class and split and the settings, so the Data page's copy
    check, the training run's check and `latih data check` of the same photos find the pairs
    once (at 50,000 photos that is about a minute on 2 cores). Only a speed-up: a broken cache
    is logged and skipped (core.data.cachedb)."""

    def __init__(self, workspace=None):
        super().__init__("pairs.sqlite", "CREATE TABLE IF NOT EXISTS pairs (key TEXT PRIMARY KEY, csv BLOB)",
                         workspace)

    def lookup(self, key: str) -> pd.DataFrame | None:
        import io

        with self.use("read") as db:
            row = db.execute("SELECT csv FROM pairs WHERE key = ?", (key,)).fetchone() if db is not None else None
        if row is None:
            return None
        try:
            return read_pairs_csv(io.BytesIO(row[0]))
        except (ValueError, KeyError, pd.errors.ParserError) as exc:
            logger.warning("cached copy pairs %s unreadable (%s): finding them again", key[:12], exc)
            return None

    def store(self, key: str, pairs: pd.DataFrame) -> None:
        with self.use("written") as db:
            if db is not None:
                db.execute("INSERT OR REPLACE INTO pairs VALUES (?, ?)", (key, pairs.to_csv(index=False).encode()))


def _memo_key(df: pd.DataFrame, settings: str) -> str:
    digest = hashlib.sha1(settings.encode())
    for column in ("path", "sha1", "label", "split"):
        digest.update("\0".join(df[column].astype(str)).encode())
        digest.update(b"\1")
    return digest.hexdigest()


def find_pairs(df: pd.DataFrame, workspace=None, progress=None) -> pd.DataFrame:
    """One row per confirmed pair of readable photos (PAIR_COLUMNS), most alike first.

    A candidate is a near-copy when `confirm` confirms it (both scales pass).
    kind: "identical" (same bytes) or "near" (confirmed near-copy); scope: "across_classes",
    "across_splits" (same class, different split) or "within_class". `progress(task, done,
    total)` is called with task "thumbnails" and "compare".
    """
    rows = df[df["readable"].astype(bool)].reset_index(drop=True) if "readable" in df.columns else df.reset_index(drop=True)
    key = _memo_key(rows, _settings(workspace))
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key].copy()
    cache = PairsCache(workspace)
    cached = cache.lookup(key)
    if cached is not None:
        logger.info("copies: %d photos, %d pairs from the cache", len(rows), len(cached))
        _remember(key, cached)
        return cached.copy()
    identical = sha1_pairs(rows["sha1"].astype(str))
    thumbs, ok = thumbnails(rows, workspace, progress=(lambda d, n: progress("thumbnails", d, n)) if progress else None)
    candidates = candidate_pairs(rows, thumbs, ok)

    def fine_thumbs(fine_rows):
        fine, _ = thumbnails(rows.iloc[fine_rows], workspace, size=FINE)
        return fine

    scores, confirmed = confirm(thumbs, fine_thumbs, candidates,
                                progress=(lambda d, n: progress("compare", d, n)) if progress else None)
    near = candidates[confirmed]
    logger.info("copies: %d photos, %d identical pairs, %d candidates, %d near-copies confirmed",
                len(rows), len(identical), len(candidates), len(near))
    table = pd.concat([_pair_table(rows, identical, np.ones(len(identical)), "identical"),
                       _pair_table(rows, near, scores[confirmed], "near")], ignore_index=True)
    table = table.sort_values(["similarity", "file_a", "file_b"], ascending=[False, True, True], ignore_index=True)
    cache.store(key, table)
    _remember(key, table)
    return table.copy()


def _remember(key: str, table: pd.DataFrame) -> None:
    _MEMO[key] = table
    while len(_MEMO) > MEMO_SIZE:
        _MEMO.popitem(last=False)


def _pair_table(rows: pd.DataFrame, pairs: np.ndarray, scores, kind: str) -> pd.DataFrame:
    if not len(pairs):
        return pd.DataFrame(columns=PAIR_COLUMNS)
    a, b = rows.iloc[pairs[:, 0]], rows.iloc[pairs[:, 1]]
    split_a, split_b = a["split"].astype(str).to_numpy(), b["split"].astype(str).to_numpy()
    class_a, class_b = a["label"].astype(str).to_numpy(), b["label"].astype(str).to_numpy()
    scope = np.where(class_a != class_b, "across_classes",
                     np.where((split_a != split_b) & (split_a != "") & (split_b != ""), "across_splits", "within_class"))
    table = pd.DataFrame({"file_a": a["path"].to_numpy(), "file_b": b["path"].to_numpy(), "class_a": class_a,
                          "class_b": class_b, "split_a": split_a, "split_b": split_b,
                          "similarity": np.round(np.asarray(scores, dtype=float), 4), "kind": kind, "scope": scope})
    # file_a is the alphabetically first file, so a pair reads (and is keyed) the same every time.
    swap = table["file_a"] > table["file_b"]
    for x, y in (("file_a", "file_b"), ("class_a", "class_b"), ("split_a", "split_b")):
        table.loc[swap, [x, y]] = table.loc[swap, [y, x]].to_numpy()
    return table


def pair_key(file_a: str, file_b: str) -> str:
    """Stable id of a pair (order-free), used to store the person's decision about it."""
    first, second = sorted((str(file_a), str(file_b)))
    return f"{first}\n{second}"


def group_ids(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of n rows joined by pairs (for the split only: copies stay on one side)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(pairs):
        return np.arange(n)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]
