"""Training throughput: full fine-tuning vs the frozen-trunk + cached-features scheme.

    python bench/bench_train.py --threads 2 --size 224 --batch 16 --steps 5

Prints a markdown table (docs/BENCHMARKS.md, "Training"). Images are random: throughput does
not depend on content. The cached scheme pays the trunk once per cached view, then each epoch
costs only the head; the last column folds both into images/s for a 30-epoch run.
"""

from __future__ import annotations

import argparse
import time

import torch

from qc_model.network import build_model


def _time(fn, steps: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up: allocator, oneDNN kernel selection
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def bench(freeze: int, size: int, batch: int, steps: int, device: str) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(num_classes=10, weights="imagenet", freeze_blocks=freeze).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    x = torch.randn(batch, 3, size, size, device=device)
    y = (torch.rand(batch, 10, device=device) > 0.8).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        z = model.forward_trunk(x)

    def step() -> None:
        model.train()
        logits, _ = model.forward_head(z) if freeze else model(x)
        loss = loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()

    def trunk() -> None:
        with torch.no_grad():
            model.eval()
            model.forward_trunk(x)
        sync()

    step_s = _time(step, steps)
    out = {"train_img_s": batch / step_s}
    if freeze:
        out["trunk_img_s"] = batch / _time(trunk, steps)
        out["feature_kb"] = z[0].numel() * 2 / 1024  # float16 cache per view
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--freeze", type=int, nargs="*", default=[0, 3, 5, 6])
    p.add_argument("--views", type=int, default=4, help="cached views per photo")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"device {a.device}, {a.threads} threads, {a.size} px, batch {a.batch}\n")
    print("| freeze_blocks | train step img/s | trunk (cache) img/s | cache KB/view |"
          f" effective img/s over {a.epochs} epochs |")  # fmt: skip
    print("|---|---|---|---|---|")
    for f in a.freeze:
        r = bench(f, a.size, a.batch, a.steps, a.device)
        if f == 0:
            print(
                f"| 0 (full fine-tune) | {r['train_img_s']:.1f} | - | - | {r['train_img_s']:.1f} |"
            )
            continue
        # Seconds per photo: views x trunk once, then epochs x head step.
        per_photo = a.views / r["trunk_img_s"] + a.epochs / r["train_img_s"]
        eff = a.epochs / per_photo
        print(f"| {f} | {r['train_img_s']:.1f} | {r['trunk_img_s']:.1f} | "
              f"{r['feature_kb']:.0f} | {eff:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
