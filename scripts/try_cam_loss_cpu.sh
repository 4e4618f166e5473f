#!/usr/bin/env bash
# The per-cell loss (cam_loss) against image labels alone, on a CPU: both runs start from the
# bundled package's weights (recovered from its ONNX graph), freeze stages 0-4 and train the rest
# on the seed-1 synthetic set; then both are exported and scored with the bundled package on
# seed 1's validation split and on the seed-2 test set (models/default/MODEL_CARD.md has the
# results of 2026-11-26).
#
#   bash scripts/try_cam_loss_cpu.sh          # about an hour on the 2-core VM
# Settings (environment): EXP (work folder, default runs/cam-cpu), DATA (where train-s1 and
# test-s2 are or will be rendered, default data), EPOCHS (12).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
EXP=${EXP:-runs/cam-cpu}
DATA=${DATA:-data}
EPOCHS=${EPOCHS:-12}
kito() { "$PY" -m kito "$@"; }
mkdir -p "$EXP"
[ -f "$DATA/train-s1/manifest.jsonl" ] || kito data synth --out "$DATA/train-s1" --count 10000 --size 1024 --seed 1 --defect-rate 0.5
[ -f "$DATA/test-s2/manifest.jsonl" ] || kito data synth --out "$DATA/test-s2" --count 2000 --size 1024 --seed 2
[ -f "$EXP/trainval-s1.jsonl" ] || kito data merge --out "$EXP/trainval-s1.jsonl" "$DATA/train-s1:test=train"
"$PY" - "$EXP" <<'PY'
import sys
from pathlib import Path

import yaml

from training.package_weights import checkpoint_from_package

exp = Path(sys.argv[1])
weights = checkpoint_from_package(Path("models/default"), exp / "champion.pt")
cfg = yaml.safe_load(open("configs/train_gpu.yaml"))
cfg.update(weights=str(weights), bn_stats="frozen", freeze_blocks=5, cache_views=3, workers=2,
           device="cpu")
cfg.pop("cache_dir", None)
yaml.safe_dump(cfg, open(exp / "cam.yaml", "w"), sort_keys=False)
PY
for w in 1.0 0; do
  run="$EXP/runs/cam$w"
  [ -f "$run/checkpoint.pt" ] || kito train --config "$EXP/cam.yaml" --manifest "$EXP/trainval-s1.jsonl" \
    --out "$run" --set "cam_loss=$w" --set "epochs=$EPOCHS"
  for ck in best checkpoint; do
    [ -d "$EXP/pkg/cam$w-$ck" ] || kito export --checkpoint "$run/$ck.pt" \
      --calibration-manifest "$EXP/trainval-s1.jsonl" --out "$EXP/pkg/cam$w-$ck" --workers 2
  done
done
"$PY" - "$EXP" "$DATA" models/default "$EXP"/pkg/* <<'PY'
import sys
from pathlib import Path

import numpy as np

from qc_model.manifest import Manifest
from qc_model.package import read_meta
from training.compare import score_package
from training.metrics import average_precision

exp, data = Path(sys.argv[1]), Path(sys.argv[2])
val = Manifest.read(exp / "trainval-s1.jsonl").split("val")
test = list(Manifest.read(data / "test-s2" / "manifest.jsonl").records)
sets = (("val", val, exp), ("test", test, data / "test-s2"))
print("| package | set | mAP | macro-F1 | recall | false-hold | AP per class |")
for pkg in map(Path, sys.argv[3:]):
    classes = read_meta(pkg).classes
    for name, recs, root in sets:
        s = score_package(pkg, recs, root, classes)
        y = np.array([[c in r.labels for c in classes] for r in recs])
        aps = [average_precision(s.probs[:, k], y[:, k]) for k in range(len(classes))]
        ad = s.any_defect
        per = " ".join(f"{c}={a:.2f}" for c, a in zip(classes, aps, strict=True))
        print(f"| {pkg.name} | {name} | {np.mean(aps):.3f} | {s.scores.macro_f1:.3f} | "
              f"{ad['recall']:.3f} | {ad['false_hold_rate']:.3f} | {per} |")
PY
