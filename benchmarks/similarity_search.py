"""Exact similarity search at scale: is it the bottleneck a FAISS index would remove?

On random unit vectors of `--dims` dimensions (kssl's ResNet-18 embeds in 512), measures
in this process:

1. `kssl.evaluation.similarity.top_k` for one query over `--rows` rows (the median of `--queries`
   queries) and the peak memory it adds beyond the embeddings themselves;
2. `kssl.evaluation.similarity.duplicate_pairs` over `--pair-rows` rows (every pair is compared, so
   the time grows with the square of the rows; the time for `--rows` is extrapolated);
3. for scale: the time to compute the embeddings of that many images, from `--images-per-second`
   (the `kssl embed` speed measured on the same machine, printed by it).

    python benchmarks/similarity_search.py --rows 1000000 --dims 512 --pair-rows 50000
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np

from kssl.evaluation.similarity import duplicate_pairs, l2_normalized, top_k


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--pair-rows", type=int, default=50_000)
    parser.add_argument("--images-per-second", type=float, default=None)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    embeddings = np.empty((args.rows, args.dims), np.float32)
    for start in range(0, args.rows, 100_000):  # filled in chunks: no float64 copy of the whole
        embeddings[start : start + 100_000] = l2_normalized(
            rng.normal(size=(min(100_000, args.rows - start), args.dims))
        )
    held = peak_rss_mb()
    print(
        f"{args.rows:,} x {args.dims} float32 embeddings: {embeddings.nbytes / 2**20:,.0f} MB; peak RSS {held:,.0f} MB"
    )

    times = []
    for query in rng.integers(0, args.rows, args.queries):
        started = time.perf_counter()
        indices, _ = top_k(embeddings, embeddings[query], k=10)
        times.append(time.perf_counter() - started)
        assert indices[0] == query
    print(f"top_k, one query over {args.rows:,} rows: median {statistics.median(times):.3f} s "
          f"(of {args.queries}); peak RSS now {peak_rss_mb():,.0f} MB (+{peak_rss_mb() - held:,.0f} MB)")  # fmt: skip

    subset = embeddings[: args.pair_rows]
    started = time.perf_counter()
    pairs, _ = duplicate_pairs(subset, threshold=0.95)
    seconds = time.perf_counter() - started
    scale = (args.rows / args.pair_rows) ** 2
    print(f"duplicate_pairs over {args.pair_rows:,} rows: {seconds:.1f} s ({len(pairs)} pairs); "
          f"peak RSS now {peak_rss_mb():,.0f} MB; over {args.rows:,} rows: ~{seconds * scale / 60:,.0f} min "
          "(extrapolated, quadratic)")  # fmt: skip
    if args.images_per_second:
        print(f"embedding {args.rows:,} images at {args.images_per_second:g} images/s: "
              f"{args.rows / args.images_per_second / 60:,.0f} min")  # fmt: skip


if __name__ == "__main__":
    main()
