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


def _time(fn, steps: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(wall s, process CPU s) per call. CPU time barely depends on other jobs sharing the
    cores, so it is the figure to compare on a busy machine."""
    fn()  # warm-up: allocator, oneDNN kernel selection
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


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

    step_s, step_cpu = _time(step, steps)
    out = {"train_img_s": batch / step_s, "train_cpu_ms": 1000 * step_cpu / batch}
    if freeze:
        trunk_s, trunk_cpu = _time(trunk, steps)
        out["trunk_img_s"] = batch / trunk_s
        out["trunk_cpu_ms"] = 1000 * trunk_cpu / batch
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
    cols = [
        "freeze_blocks",
        "train step img/s",
        "CPU ms/img",
        "trunk (cache) img/s",
        "CPU ms/img",
        "cache KB/view",
        f"effective img/s, {a.epochs} epochs",
        f"CPU s/photo, {a.epochs} epochs",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for f in a.freeze:
        r = bench(f, a.size, a.batch, a.steps, a.device)
        if f == 0:
            cpu = a.epochs * r["train_cpu_ms"] / 1000
            row = ["0 (full fine-tune)", f"{r['train_img_s']:.1f}", f"{r['train_cpu_ms']:.0f}"]
            row += ["-", "-", "-", f"{r['train_img_s']:.1f}", f"{cpu:.1f}"]
        else:
            # Per photo: the trunk once per cached view, then one head step per epoch.
            per_photo = a.views / r["trunk_img_s"] + a.epochs / r["train_img_s"]
            cpu = (a.views * r["trunk_cpu_ms"] + a.epochs * r["train_cpu_ms"]) / 1000
            row = [str(f), f"{r['train_img_s']:.1f}", f"{r['train_cpu_ms']:.0f}"]
            row += [f"{r['trunk_img_s']:.1f}", f"{r['trunk_cpu_ms']:.0f}"]
            row += [f"{r['feature_kb']:.0f}", f"{a.epochs / per_photo:.1f}", f"{cpu:.1f}"]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
