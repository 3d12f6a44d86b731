"""lightly's DINO on a labeled folder for a fixed number of steps: the reference for how
DINO's teacher behaves early in training on a small set of photos.

kssl's DINO did not beat a random encoder in 195 steps on the flowers, and its teacher's
entropy rose towards log K (BENCHMARKS.md, "DINO on the flowers"). This script runs the
same set-up with lightly's modules (`DINOProjectionHead`, `DINOLoss`, `DINOTransform`,
`update_momentum`, `cosine_schedule`), following lightly's DINO example, so the two
curves can be compared: is the rise kssl's bug or DINO's beginning? It matches kssl's
DINO defaults where they are options: a quarter-width ResNet-18 (lightly's
`ResNetGenerator`), a head 2 x D wide with a 256 bottleneck and `--prototypes`, no batch
norm in the head unless `--head-batch-norm`, 2 global crops (14-100%) and 6 local ones
at 96/224 of the size (5-40%, lightly's), student temperature 0.1, teacher 0.04 warmed to
0.07 over the first 30% of the steps, centre momentum 0.9, teacher momentum 0.99 to 1 on
a cosine, SGD 0.06 x B/128 (momentum 0.9, weight decay 5e-4) with a cosine decay.

Every `--log-every` steps it prints the loss and the teacher's entropy (of its centred,
sharpened distribution, in nats; log K is uniform); at the end it saves the frozen
backbone's features for `evaluate_features.py` (kNN and linear probe, as kssl scores):

    /tmp/lightly-venv/bin/python benchmarks/lightly_dino.py --data ../shared/data/flowers \\
        --image-size 64 --steps 200 --features /tmp/lightly-dino.npz
    python benchmarks/evaluate_features.py /tmp/lightly-dino.npz
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

from lightly_reference import add_common_arguments, lightly_backbone, save_features


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder with train/<class>/ and test/<class>/")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--prototypes", type=int, default=1024)
    parser.add_argument("--local-crops", type=int, default=6)
    parser.add_argument("--head-batch-norm", action="store_true")
    parser.add_argument("--log-every", type=int, default=10)
    add_common_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import pathlib

    import torch
    import torchvision
    from lightly.loss import DINOLoss
    from lightly.models.modules import DINOProjectionHead
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms import DINOTransform
    from lightly.utils.scheduler import cosine_schedule

    torch.manual_seed(args.seed)
    backbone = lightly_backbone(args.width)
    dim = backbone(torch.zeros(2, 3, 32, 32)).shape[1]
    heads = [DINOProjectionHead(dim, min(2048, 2 * dim), 256, args.prototypes, batch_norm=args.head_batch_norm)
             for _ in range(2)]  # fmt: skip
    heads[1].load_state_dict(heads[0].state_dict())  # the teacher starts as the student (weight norm: no deepcopy)
    student = torch.nn.Sequential(backbone, heads[0])
    teacher = torch.nn.Sequential(copy.deepcopy(backbone), heads[1])
    deactivate_requires_grad(teacher)
    criterion = DINOLoss(output_dim=args.prototypes, warmup_teacher_temp=0.04, teacher_temp=0.07)
    peak = 0.06 * args.batch_size / 128
    optimizer = torch.optim.SGD(student.parameters(), lr=peak, momentum=0.9, weight_decay=5e-4)

    local_size = round(args.image_size * 96 / 224)
    transform = DINOTransform(global_crop_size=args.image_size, global_crop_scale=(0.14, 1.0),
                              local_crop_size=local_size, n_local_views=args.local_crops)  # fmt: skip
    train = torchvision.datasets.ImageFolder(pathlib.Path(args.data) / "train", transform=transform)
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers, persistent_workers=args.workers > 0)  # fmt: skip
    curve = []
    step, start = 0, time.perf_counter()
    student.train()
    teacher.train()
    while step < args.steps:
        for views, _ in loader:
            if step >= args.steps:
                break
            progress = step / args.steps
            for group in optimizer.param_groups:
                group["lr"] = peak * 0.5 * (1 + math.cos(math.pi * progress))
            momentum = cosine_schedule(step, args.steps, 0.99, 1.0)
            update_momentum(student, teacher, m=momentum)
            temperature = 0.04 + min(progress / 0.3, 1.0) * (0.07 - 0.04)
            with torch.no_grad():
                teacher_out = [teacher(view) for view in views[:2]]
                sharpened = torch.softmax((torch.stack(teacher_out) - criterion.center) / temperature, dim=-1)
                entropy = float(-(sharpened * torch.log(sharpened + 1e-12)).sum(-1).mean())
            student_out = [student(view) for view in views]
            loss = criterion(teacher_out, student_out, teacher_temp=temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % args.log_every == 0 or step == args.steps - 1:
                curve.append({"step": step, "loss": loss.item(), "teacher_entropy": entropy})
                print(f"step {step} ({time.perf_counter() - start:.0f}s): loss {loss.item():.3f} "
                      f"teacher entropy {entropy:.3f} (log K {math.log(args.prototypes):.3f})", flush=True)  # fmt: skip
            step += 1
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "recipe": "lightly DINO modules, kssl's DINO defaults",
        "torch": torch.__version__,
        "args": vars(args),
        "steps": step,
        "seconds": time.perf_counter() - start,
        "curve": curve,
    }
    save_features(backbone, args.data, args.features, summary, workers=args.workers, image_size=args.image_size)
    print(json.dumps({k: v for k, v in summary.items() if k != "curve"}, indent=2))


if __name__ == "__main__":
    main()
