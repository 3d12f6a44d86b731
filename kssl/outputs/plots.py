"""PNG plots of a run: training curves, label efficiency, a 2-D map of embeddings, and a
contact sheet of images.

Every function writes its PNG atomically and returns the path. matplotlib runs with the
non-interactive Agg backend, so plotting works on machines with no display.
"""

from __future__ import annotations

import pathlib

import numpy as np

from kssl.outputs.atomic import atomic_file


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _save(figure, path) -> pathlib.Path:
    import matplotlib.pyplot as plt

    try:
        figure.tight_layout()
        with atomic_file(path, suffix=".png") as tmp:
            figure.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(figure)
    return pathlib.Path(path)


def plot_training_curves(curves: dict[str, tuple[list, dict]], path, title: str = "Training curves"):
    """One panel per metric; `curves` maps a run name to `(steps, {metric: values})`.

    Examples:
        >>> import tempfile, os
        >>> p = plot_training_curves({"pretraining": ([1, 2, 3], {"loss": [3.0, 2.0, 1.5]})},
        ...                          os.path.join(tempfile.mkdtemp(), "curves.png"))
        >>> p.name
        'curves.png'
    """
    metrics = sorted({m for _, logs in curves.values() for m in logs})
    figure, axes = _figure(1, max(1, len(metrics)), figsize=(4.2 * max(1, len(metrics)), 3.2), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for name, (steps, logs) in curves.items():
            if metric in logs:
                axis.plot(steps[: len(logs[metric])], logs[metric], label=name)
        axis.set_xlabel("training step")
        axis.set_title(metric.replace("_", " "))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title)
    return _save(figure, path)


def _points(values):
    """`(means, lows, highs)` of a list of accuracies or of `(accuracy, [low, high] or None)`."""
    pairs = [value if isinstance(value, (tuple, list)) else (value, None) for value in values]
    means = np.asarray([mean for mean, _ in pairs], np.float64)
    lows = np.asarray([mean if interval is None else interval[0] for mean, interval in pairs], np.float64)
    highs = np.asarray([mean if interval is None else interval[1] for mean, interval in pairs], np.float64)
    return means, lows, highs


def plot_label_efficiency(label_counts, strategies: dict[str, tuple[list, list]], path):
    """Test accuracy against the number of labeled images, a line per fine-tuning
    strategy: from the pretrained encoder (solid) and from scratch (dashed, same colour).

    `strategies` maps a mode name to `(pretrained, scratch)`, one value per label count
    (a scratch list may be None), or to `(pretrained, scratch, legend)` to name the solid
    line otherwise than "MODE, pretrained". A value is an accuracy, or `(mean accuracy, [low, high])`
    over several draws of the labels: the 95% interval is drawn as a band (None: no band).

    Examples:
        >>> import tempfile, os
        >>> p = plot_label_efficiency([10, 100], {"full": ([(0.5, [0.4, 0.6]), (0.8, None)], [0.3, 0.6]),
        ...                                       "lora": ([0.5, 0.7], None)},
        ...                           os.path.join(tempfile.mkdtemp(), "labels.png"))
        >>> p.name
        'labels.png'
    """
    figure, axis = _figure(figsize=(5.6, 3.8))
    colours = _colours(max(len(strategies), 1))
    banded = False
    for colour, (mode, (pretrained, scratch, *named)) in zip(colours, strategies.items()):
        solid = named[0] if named else f"{mode}, pretrained"
        lines = ((pretrained, "o-", 1.0, solid), (scratch, "s--", 0.7, f"{mode}, from scratch"))
        for values, style, alpha, label in lines:
            if values is None:
                continue
            means, lows, highs = _points(values)
            axis.plot(label_counts, means, style, color=colour, alpha=alpha, label=label)
            if np.any(highs > lows):
                banded = True
                axis.fill_between(label_counts, lows, highs, color=colour, alpha=0.12 * alpha, linewidth=0)
                axis.errorbar(label_counts, means, yerr=[means - lows, highs - means], fmt="none", ecolor=colour,
                              alpha=alpha, capsize=3, linewidth=0.8)  # fmt: skip
    if len(label_counts) > 1:
        axis.set_xscale("log")
    axis.minorticks_off()
    axis.set_xticks(list(label_counts), [str(count) for count in label_counts])
    axis.set_xlabel("labeled images")
    axis.set_ylabel("test accuracy" + (" (mean over draws, 95% interval)" if banded else ""))
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    axis.set_title("Does pretraining pay off? (solid: pretrained, dashed: scratch)", fontsize=9)
    return _save(figure, path)


def plot_embedding_map(features, labels, class_names, path, max_points: int = 2000, seed: int = 0):
    """A 2-D t-SNE map of (L2-normalised) features, coloured by class."""
    from sklearn.manifold import TSNE

    features = np.asarray(features, np.float32)
    labels = np.asarray(labels)
    if len(features) > max_points:
        keep = np.random.default_rng(seed).choice(len(features), max_points, replace=False)
        features, labels = features[keep], labels[keep]
    from kssl.evaluation.similarity import l2_normalized

    features = l2_normalized(features)
    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
    figure, axis = _figure(figsize=(5.5, 4.5))
    colours = _colours(len(class_names))
    for label, name in enumerate(class_names):
        mask = labels == label
        axis.scatter(points[mask, 0], points[mask, 1], s=6, color=colours[label], label=name)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title("Test embeddings (t-SNE), coloured by class")
    if len(class_names) <= 20:
        axis.legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
    return _save(figure, path)


def _colours(count):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20" if count <= 20 else "viridis"]
    return [cmap(i if count <= 20 else i / max(1, count - 1)) for i in range(count)]


def plot_contact_sheet(paths, path, title: str, columns: int = 8, side: int = 96, captions=None) -> pathlib.Path:
    """A grid of the image files at `paths` (each its centred square, `side` px, turned
    as its EXIF orientation says), numbered in order (or titled by `captions`), as a PNG at `path`.
    A file that cannot be read (gone or changed since it was listed) is a grey tile captioned so."""
    from PIL import Image, ImageOps

    rows = max(1, -(-len(paths) // columns))
    figure, axes = _figure(rows, columns, figsize=(columns * 1.3, rows * 1.45 + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for rank, (ax, image_path) in enumerate(zip(axes.flat, paths), start=1):
        caption = f"{rank}. {pathlib.Path(image_path).name}" if captions is None else captions[rank - 1]
        try:
            with Image.open(image_path) as image:
                square = np.asarray(ImageOps.fit(ImageOps.exif_transpose(image).convert("RGB"), (side, side)))
        except Exception:  # noqa: BLE001 - PIL raises many types for unreadable files
            square, caption = np.full((side, side, 3), 128, np.uint8), f"unreadable: {caption}"
        ax.imshow(square)
        ax.set_title(caption[:18], fontsize=7)
    figure.suptitle(title, fontsize=9)
    return _save(figure, path)
