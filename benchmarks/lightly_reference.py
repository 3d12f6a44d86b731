"""lightly's SimCLR recipe for CIFAR-10 on the same wall-clock budget, on this machine.

The issue's reference numbers for lightly (kNN 50.2% / linear 55.2% in 15 minutes at
~800 views/s) were measured on a machine we no longer have; this script re-measures
them on whatever machine runs it, so kssl's `cifar10_budget.py` can be compared with
lightly on the same CPU, the same day. It follows lightly's CIFAR-10 benchmark
(`docs/source/getting_started/benchmarks/cifar10_benchmark.py`): lightly's
`ResNetGenerator("resnet-18")` (here quarter width), `SimCLRProjectionHead(D, D, 128)`,
`NTXentLoss` (temperature 0.5), `SimCLRTransform(input_size=32, gaussian_blur=0,
cj_strength=0.5)`, SGD (learning rate 0.06 x batch / 128, momentum 0.9, weight decay
5e-4) with cosine annealing, images read from the folder by a `DataLoader`. The one
change: the cosine runs over the fraction of the time budget elapsed (as kssl's
`TimeBudget` does) instead of over a fixed epoch count, so it ends when the budget does.

It needs PyTorch, torchvision and lightly, which kssl does not depend on; use a separate
virtual environment. It writes the frozen features of the train and test images (at
32 px, lightly's test transform) to an `.npz`; `evaluate_features.py`, run with kssl,
scores them with the same kNN and linear probe as `cifar10_budget.py`:

    python -m venv /tmp/lightly-venv
    /tmp/lightly-venv/bin/pip install torch torchvision lightly scikit-learn
    /tmp/lightly-venv/bin/python benchmarks/lightly_reference.py --budget 15 --features /tmp/lightly.npz
    python benchmarks/evaluate_features.py /tmp/lightly.npz
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import time

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--budget", type=float, default=15.0, help="pretraining minutes")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def add_common_arguments(parser) -> None:
    """The options every lightly reference script takes: width, batch, workers, seed, output."""
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", required=True, help="write train/test features and labels here (.npz)")


def lightly_backbone(width: float):
    """lightly's CIFAR ResNet-18 (`ResNetGenerator`) at `width`, pooled and flattened to features."""
    import torch
    from lightly.models import ResNetGenerator

    resnet = ResNetGenerator("resnet-18", width=width)
    return torch.nn.Sequential(*list(resnet.children())[:-1], torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


def main(argv=None):
    args = parse_args(argv)
    import torch
    import torchvision
    from lightly.loss import NTXentLoss
    from lightly.models import ResNetGenerator
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform

    torch.manual_seed(args.seed)
    data = pathlib.Path(args.data)
    backbone = lightly_backbone(args.width)
    features = backbone(torch.zeros(2, 3, 32, 32)).shape[1]
    head = SimCLRProjectionHead(features, features, 128)
    model = torch.nn.Sequential(backbone, head)
    criterion = NTXentLoss()
    peak = 0.06 * args.batch_size / 128
    optimizer = torch.optim.SGD(model.parameters(), lr=peak, momentum=0.9, weight_decay=5e-4)

    # The backbone's own forward+backward speed on 2B random views (not charged to the budget).
    probe = torch.nn.Sequential(*list(ResNetGenerator("resnet-18", width=args.width).children())[:-1])
    views = torch.rand(2 * args.batch_size, 3, 32, 32)
    for _ in range(2):
        probe(views).square().mean().backward()
    start = time.perf_counter()
    for _ in range(5):
        probe(views).square().mean().backward()
    backbone_views_per_second = 5 * views.shape[0] / (time.perf_counter() - start)
    print(f"backbone alone: {backbone_views_per_second:.0f} views/s", flush=True)

    transform = SimCLRTransform(input_size=32, gaussian_blur=0.0, cj_strength=0.5)
    train_ssl = torchvision.datasets.ImageFolder(data / "train", transform=transform)
    loader = torch.utils.data.DataLoader(
        train_ssl,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    budget = args.budget * 60
    steps, epochs_started = 0, 0
    model.train()
    start = time.perf_counter()
    done = False
    while not done:
        epochs_started += 1
        for (view_1, view_2), _ in loader:
            elapsed = time.perf_counter() - start
            if elapsed >= budget:
                done = True
                break
            for group in optimizer.param_groups:
                group["lr"] = peak * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
            loss = criterion(model(view_1), model(view_2))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            if steps % 50 == 0:
                print(f"step {steps} ({elapsed:.0f}s): loss {loss.item():.3f}", flush=True)
    fit_seconds = time.perf_counter() - start
    steps_per_epoch = len(train_ssl) // args.batch_size
    views_per_second = 2 * args.batch_size * steps / fit_seconds
    print(
        f"pretrained {steps} steps ({steps / steps_per_epoch:.2f} epochs) in {fit_seconds:.0f}s: "
        f"{views_per_second:.0f} views/s",
        flush=True,
    )

    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "recipe": "lightly SimCLR (cifar10_benchmark.py), cosine over the time budget",
        "torch": torch.__version__,
        "args": vars(args),
        "steps": steps,
        "epochs": steps / steps_per_epoch,
        "views_per_second": views_per_second,
        "backbone_views_per_second": backbone_views_per_second,
    }
    save_features(backbone, data, args.features, summary, workers=args.workers)
    print(json.dumps(summary, indent=2))


def save_features(backbone, data, path, summary, workers=2, image_size=None):
    """Writes the frozen `backbone`'s features of `data`/train and `data`/test (lightly's
    test transform; photos resized and centre-cropped to `image_size`) with their labels
    and the JSON `summary` to the `.npz` at `path`, whole or not at all."""
    import numpy as np
    import torch
    import torchvision
    from lightly.transforms.utils import IMAGENET_NORMALIZE

    resize = [] if image_size is None else [torchvision.transforms.Resize(image_size),
                                            torchvision.transforms.CenterCrop(image_size)]  # fmt: skip
    test_transform = torchvision.transforms.Compose(
        resize
        + [
            torchvision.transforms.ToTensor(),
            torchvision.transforms.Normalize(mean=IMAGENET_NORMALIZE["mean"], std=IMAGENET_NORMALIZE["std"]),
        ]
    )
    backbone.eval()
    arrays = {}
    with torch.no_grad():
        for split in ("train", "test"):
            dataset = torchvision.datasets.ImageFolder(pathlib.Path(data) / split, transform=test_transform)
            loader = torch.utils.data.DataLoader(dataset, batch_size=512, num_workers=workers)
            feature_batches, label_batches = [], []
            for images, labels in loader:
                feature_batches.append(backbone(images).numpy())
                label_batches.append(labels.numpy())
            arrays[f"{split}_features"] = np.concatenate(feature_batches)
            arrays[f"{split}_labels"] = np.concatenate(label_batches)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as file:  # written whole, then renamed into place
        np.savez(file, summary=json.dumps(summary), **arrays)
    os.replace(partial, path)


if __name__ == "__main__":
    main()
