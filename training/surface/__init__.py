"""The surface branch: train it on defect masks, export it, and attach it to a model package.

The defect network scores each photo from its piece crop resized to 224 px and learns from one
label per photo. On the synthetic data its scratch, pitting and finish_flaw scores follow the
design, not the defect (model card, "Finer photos"). The surface branch looks at the same crop
at a fixed scale in pixels per mm (qc_model.surface) and is told where each defect is:

- network: the stem and stages 0-4 of tf_efficientnet_lite0 (ImageNet weights, all trained),
  the stride-16 stages 3-4 upsampled and joined to stage 2's stride-8 features, then a 3x3 +
  1x1 head (`--arch s8`: stages 0-2 only); fully convolutional, one logit per class per
  8 x 8 pixel cell;
- training: random patches, half centred on a defect pixel, with per-cell targets from the
  renderer's masks (any mask pixel in the cell);
- a photo's branch logit for a class is its highest cell.

`attach` puts a trained branch into an existing package: for each class it fits, on the
calibration set's val split, a logistic combination of the package's logit and the branch's
(`Fusion`), keeps it only where it ranks validation photos better (AP), then chooses the
thresholds again exactly as `kito export` does. A package that already has a branch can give
it to another (`kito retrain` carries the champion's branch to the challenger).

The modules, each importing only those above it:

    data         a photo's crop at the branch's scale and its masks as bits; the crop cache
    network      the branch network (ARCHS)
    config       SurfaceTrainConfig, the settings of `kito surface train`
    sampler      random training patches
    scoring      a branch's logit per photo, as the service counts it (torch or ONNX)
    mining       hard negatives
    checkpoint   surface.pt
    train        train_surface
    onnx_export  surface.onnx
    fusion       the package's and the branch's scores combined
    attach_branch  attach: the branch put into a package
"""

from training.surface.attach_branch import PARITY_ATOL, NoGainError, attach
from training.surface.checkpoint import SURFACE_FORMAT, load_surface, save_surface
from training.surface.config import SurfaceTrainConfig
from training.surface.data import (
    MAX_CLASSES,
    Sample,
    cell_targets,
    make_sample,
    photo_surface_crop,
    prepare,
)
from training.surface.fusion import (
    DESIGN_SHRINK,
    MIN_AP_GAIN,
    apply_fusion,
    choose_fusion,
    design_offsets,
    fit_fusion,
    fused_probs,
)
from training.surface.mining import mine_hard_negatives
from training.surface.network import ARCHS, build_surface_net, check_arch, net_arch
from training.surface.onnx_export import export_surface_onnx, graph_tile, surface_graph
from training.surface.sampler import PatchSampler
from training.surface.scoring import branch_logits, ort_logits, torch_runner
from training.surface.train import train_steps, train_surface

__all__ = [
    "ARCHS",
    "DESIGN_SHRINK",
    "MAX_CLASSES",
    "MIN_AP_GAIN",
    "PARITY_ATOL",
    "SURFACE_FORMAT",
    "NoGainError",
    "PatchSampler",
    "Sample",
    "SurfaceTrainConfig",
    "apply_fusion",
    "attach",
    "branch_logits",
    "build_surface_net",
    "cell_targets",
    "check_arch",
    "choose_fusion",
    "design_offsets",
    "export_surface_onnx",
    "fit_fusion",
    "fused_probs",
    "graph_tile",
    "load_surface",
    "make_sample",
    "mine_hard_negatives",
    "net_arch",
    "ort_logits",
    "photo_surface_crop",
    "prepare",
    "save_surface",
    "surface_graph",
    "torch_runner",
    "train_steps",
    "train_surface",
]
