"""The training recipe of the shipped model (`sins train`), reproducible from its seeds.

Data are made here: a pool of phantoms (`pipeline.phantom`, randomised anatomy, pathology, tissue HU,
noise, blur, contrast, field of view, orientation) drawn on the training grid, plus the real scans of
`data.real_cases` with their reference labels (`model.real`: unknown voxels excluded from the loss,
synthetic lesions put into real bone). Each iteration takes patches — centred on a lesion, on the
spine or anywhere — at the fine grid or the coarse (localisation) grid, with SynthSeg-style intensity
randomisation (gamma, scale, shift, noise, blur) and left-right flips. Loss: Dice + cross-entropy over
the known voxels. Checkpoints every few iterations in the work folder, so a run resumes where it
stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cc3d
import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import MaskedDiceLoss
from scipy import ndimage

from ..anatomy import Anatomy
from ..config import load_config_file
from ..errors import ConfigError, ModelError
from ..phantom import generate, random_spec
from ..volume import to_canonical
from .card import Intensity, ModelCard, load_model, write_model
from .classes import BONE_CHANNELS, IGNORE, LYTIC_CHANNEL, N_CHANNELS, SPINE_CHANNELS, to_target
from .infer import normalise
from .network import NetworkSpec, build_network
from .real import draw_real, insert_lesion


@dataclass(frozen=True)
class DataSettings:
    phantom_cases: int
    phantom_seed: int
    coarse_share: float
    lesion_share: float
    spine_share: float
    holdout_cases: int
    holdout_seed: int
    # Real scans (folders under real_root, relative to the working directory) and their share of
    # patches; each real patch gets a synthetic lesion with probability real_lesion_share.
    real_root: str = ""
    real_cases: tuple[str, ...] = ()
    real_share: float = 0.0
    real_lesion_share: float = 0.0
    # A synthetic lesion in real bone is lytic with this chance (else blastic), and its edge is blended
    # into the bone over a Gaussian of sigma (mm) drawn from this range (partial volume; 0: sharp).
    real_lytic_share: float = 0.5
    real_lesion_edge_mm: tuple[float, ...] = (0.0, 0.0)
    # Short scans: with this chance a patch keeps only a slab this thick (mm) along the body axis,
    # the rest padded as at inference (air, left out of the loss).
    slab_share: float = 0.0
    slab_mm: tuple[float, ...] = (20.0, 60.0)
    # How a lesion patch picks its centre: "voxel" (any lesion voxel: big body lesions dominate) or
    # "piece" (a lesion piece first, uniformly, then a voxel of it: small posterior-element lesions
    # are centred as often as body lesions), or "posterior" (a share posterior_share of the lesion
    # patches on a lesion voxel nearer the posterior elements than the body, when the case has one:
    # the small pedicle and lamina lesions that thick slices hide; the others as "voxel").
    lesion_centre: str = "voxel"
    posterior_share: float = 0.5
    # Samples (a case on the fine or the coarse grid) kept in memory between iterations; a sample is
    # about 5-100 MB, and a pool larger than the cache is re-read from disk (about 0.25 s a sample).
    cache_samples: int = 25

    def __post_init__(self) -> None:
        if self.lesion_centre not in ("voxel", "piece", "posterior"):
            raise ConfigError(f"data.lesion_centre must be 'voxel', 'piece' or 'posterior', not {self.lesion_centre!r}")
        if not 0.0 <= self.posterior_share <= 1.0:
            raise ConfigError(f"data.posterior_share must lie in [0, 1], not {self.posterior_share}")
        if self.cache_samples < 1:
            raise ConfigError(f"data.cache_samples must be at least 1, not {self.cache_samples}")


@dataclass(frozen=True)
class AugmentSettings:
    gamma: tuple[float, ...]
    scale: tuple[float, ...]
    shift: tuple[float, ...]
    noise_std: tuple[float, ...]
    blur_sigma_vox: tuple[float, ...]
    flip_left_right: bool
    # Thick slices (partial volume of clinical CT): with this chance a fine patch is averaged over a
    # random slice thickness (mm) along one axis and re-interpolated from slices that far apart.
    thick_slice_share: float = 0.0
    thick_slice_mm: tuple[float, ...] = (1.5, 1.5)
    # Low bone density (osteopenia, fatty marrow: cancellous bone of 80-150 HU is common in patients
    # with metastases): with this chance the bone of a phantom patch is pulled towards soft tissue
    # by a factor drawn from bone_density (1 keeps it), so dark bone alone does not read as lytic.
    bone_density_share: float = 0.0
    bone_density: tuple[float, ...] = (1.0, 1.0)


@dataclass(frozen=True)
class OptimiserSettings:
    lr: float
    weight_decay: float
    max_grad_norm: float = 50.0
    # Peak learning rate when training starts from a trained model (`sins train --init`).
    finetune_lr: float = 0.0005
    # Weight of the "no lesion here" term on voxels whose anatomy is unknown (IGNORE): real scans are
    # lesion-free outside their synthetic lesions, so the canal, fat and unlabelled bone near the
    # spine must not be called lesion even though their anatomy class is not known.
    not_lesion_weight: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    name: str
    seed: int
    spacing_mm: float
    coarse_spacing_mm: float
    patch: tuple[int, ...]
    network: NetworkSpec
    data: DataSettings
    augment: AugmentSettings
    optimiser: OptimiserSettings
    iterations: int
    batch_size: int
    checkpoint_every: int
    bf16: bool
    source: str = field(default="", compare=False)


def load_train_config(path: str | Path) -> TrainConfig:
    return load_config_file(TrainConfig, path)


# ------------------------------------------------------------------------------------------ data
_NO_ROWS = np.zeros(0, np.int64)


@dataclass(frozen=True)
class Sample:
    """One phantom on the training grid: normalised image, target classes, where to centre crops."""

    image: np.ndarray  # float32 [0, 1]
    target: np.ndarray  # uint8 channels
    lesion_voxels: np.ndarray  # (N, 3) indices
    spine_voxels: np.ndarray
    real: bool = False
    spacing_mm: float = 1.5
    lesion_pieces: tuple[np.ndarray, ...] = ()  # rows of lesion_voxels, one array per connected piece
    posterior_rows: np.ndarray = field(default_factory=lambda: _NO_ROWS)  # rows nearer the posterior elements


def _draw(seed: int, cfg: TrainConfig) -> dict[str, np.ndarray]:
    spec = random_spec(seed, spacing=(cfg.spacing_mm,) * 3)
    case = generate(spec)
    ct = to_canonical(case.ct)
    target = to_target(to_canonical(case.anatomy).array, to_canonical(case.lesions).array)
    return {"hu": ct.array.astype(np.int16), "target": target}


def make_pool(cfg: TrainConfig, work: Path, seeds: range, log: Callable[[str], None]) -> list[Path]:
    """Draw (or reuse) the phantoms of `seeds` into `work/pool`."""
    pool = work / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        path = pool / f"{seed}.npz"
        if not path.exists():
            t0 = time.perf_counter()
            arrays = _draw(seed, cfg)
            tmp = pool / f".{seed}.tmp.npz"
            np.savez_compressed(tmp, **arrays)
            tmp.replace(path)
            log(f"phantom {seed}: {arrays['hu'].shape} in {time.perf_counter() - t0:.1f} s")
        paths.append(path)
    return paths


def make_real_pool(cfg: TrainConfig, work: Path, log: Callable[[str], None]) -> list[Path]:
    """The real scans of the recipe on the training grid (`work/pool/real_NAME.npz`); missing scans
    are skipped with a log line (the card records which were used)."""
    pool = work / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in cfg.data.real_cases:
        path = pool / f"real_{name}.npz"
        if not path.exists():
            folder = Path(cfg.data.real_root) / name
            if not folder.is_dir():
                log(f"real scan {name}: {folder} absent, not used")
                continue
            arrays = draw_real(name, Path(cfg.data.real_root), cfg.spacing_mm)
            tmp = pool / f".real_{name}.tmp.npz"
            np.savez_compressed(tmp, **arrays)
            tmp.replace(path)
            log(f"real scan {name}: {arrays['hu'].shape}")
        paths.append(path)
    return paths


def load_sample(path: Path, cfg: TrainConfig, coarse: bool) -> Sample:
    with np.load(path) as f:
        hu, target = f["hu"], f["target"]
    image = normalise(hu, Intensity())
    if coarse:  # the localisation grid: average the image, take the majority-ish label by nearest
        factor = cfg.spacing_mm / cfg.coarse_spacing_mm
        image = ndimage.zoom(image, factor, order=1)
        target = ndimage.zoom(target, factor, order=0)
    lesion_mask = (target >= LYTIC_CHANNEL) & (target != IGNORE)
    lesion = np.argwhere(lesion_mask)
    spine = np.argwhere(np.isin(target, SPINE_CHANNELS))
    return Sample(
        image.astype(np.float32),
        target,
        lesion,
        spine[:: max(1, len(spine) // 20000)],
        real=path.name.startswith("real_"),
        spacing_mm=cfg.coarse_spacing_mm if coarse else cfg.spacing_mm,
        lesion_pieces=_pieces(lesion_mask, lesion),
        posterior_rows=_posterior_rows(target, lesion) if cfg.data.lesion_centre == "posterior" else _NO_ROWS,
    )


def _pieces(mask: np.ndarray, voxels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows of `voxels` (argwhere of `mask`, C order) grouped by connected piece (26-connected)."""
    if not len(voxels):
        return ()
    ids = cc3d.connected_components(mask, connectivity=26)[tuple(voxels.T)]
    order = np.argsort(ids, kind="stable")
    return tuple(np.split(order, np.flatnonzero(np.diff(ids[order])) + 1))


def _posterior_rows(target: np.ndarray, voxels: np.ndarray, margin: int = 12) -> np.ndarray:
    """Rows of `voxels` (lesion voxels) nearer a posterior-element voxel than a body voxel, judged
    within the lesions' bounding box grown by `margin` voxels (none when either class is absent)."""
    if not len(voxels):
        return _NO_ROWS
    lo = np.maximum(voxels.min(0) - margin, 0)
    hi = np.minimum(voxels.max(0) + margin + 1, target.shape)
    box = target[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    body, posterior = box == Anatomy.VERTEBRAL_BODY, box == Anatomy.POSTERIOR_ELEMENTS
    if not body.any() or not posterior.any():
        return _NO_ROWS
    local = tuple((voxels - lo).T)
    nearer = ndimage.distance_transform_edt(~posterior)[local] < ndimage.distance_transform_edt(~body)[local]
    return np.flatnonzero(nearer)


def _lesion_centre(sample: Sample, rng: np.random.Generator, how: str, posterior_share: float = 0.5) -> np.ndarray:
    if how == "posterior" and len(sample.posterior_rows) and rng.random() < posterior_share:
        return sample.lesion_voxels[sample.posterior_rows[rng.integers(len(sample.posterior_rows))]]
    if how == "piece" and sample.lesion_pieces:
        rows = sample.lesion_pieces[int(rng.integers(len(sample.lesion_pieces)))]
        return sample.lesion_voxels[rows[rng.integers(len(rows))]]
    return sample.lesion_voxels[rng.integers(len(sample.lesion_voxels))]


def crop(sample: Sample, patch: tuple[int, ...], rng: np.random.Generator, d: DataSettings):
    """A patch centred on a lesion, on the spine, or anywhere (padded with background)."""
    r = rng.random()
    if len(sample.lesion_voxels) and r < d.lesion_share:
        centre = _lesion_centre(sample, rng, d.lesion_centre, d.posterior_share)
    elif len(sample.spine_voxels) and r < d.lesion_share + d.spine_share:
        centre = sample.spine_voxels[rng.integers(len(sample.spine_voxels))]
    else:
        centre = np.array([rng.integers(n) for n in sample.image.shape])
    p = np.array(patch)
    lo = centre - p // 2 + rng.integers(-8, 9, 3)
    img = np.zeros(patch, np.float32)
    tgt = np.zeros(patch, np.uint8)
    src = tuple(slice(max(a, 0), min(a + n, s)) for a, n, s in zip(lo, p, sample.image.shape, strict=True))
    dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo, strict=True))
    img[dst] = sample.image[src]
    tgt[dst] = sample.target[src]
    if sample.real and rng.random() < d.real_lesion_share:
        insert_lesion(img, tgt, rng, sample.spacing_mm, Intensity(), d.real_lytic_share, d.real_lesion_edge_mm)
    if rng.random() < d.slab_share:
        n = p[2]
        thick = min(n, max(2, round(rng.uniform(*d.slab_mm) / sample.spacing_mm)))
        z0 = int(rng.integers(0, n - thick + 1))
        outside = np.ones(n, bool)
        outside[z0 : z0 + thick] = False
        img[..., outside] = 0.0
        tgt[..., outside] = IGNORE
    return img, tgt


def masked_dice_ce(
    logits: torch.Tensor, target: torch.Tensor, dice: MaskedDiceLoss, not_lesion_weight: float = 0.0
) -> torch.Tensor:
    """Dice + cross-entropy over the voxels whose class is known (target != IGNORE), plus, weighted,
    -log P(not a lesion) over the unknown ones (their anatomy is unknown, but they hold no lesion)."""
    known = target != IGNORE
    y = torch.where(known, target, torch.zeros_like(target))
    ce = F.cross_entropy(logits, target[:, 0], ignore_index=IGNORE) if known.any() else logits.sum() * 0.0
    loss = dice(logits, y, known.float()) + ce
    unknown = ~known[:, 0]
    if not_lesion_weight > 0 and unknown.any():
        log_not_lesion = torch.logsumexp(logits[:, :LYTIC_CHANNEL], 1) - torch.logsumexp(logits, 1)
        loss = loss - not_lesion_weight * log_not_lesion[unknown].mean()
    return loss


def thin_bone(x: np.ndarray, tgt: np.ndarray, factor: float, intensity: Intensity) -> np.ndarray:
    """Bone of a [0, 1] patch pulled towards soft tissue (40 HU) by `factor` up to 400 HU, denser
    bone (cortex) shifted by the same amount; edges blended over a voxel. Lesions keep their values."""
    bone = np.isin(tgt, BONE_CHANNELS)
    if factor >= 1.0 or not bone.any():
        return x
    span = intensity.hu_max - intensity.hu_min
    soft, cap = (40.0 - intensity.hu_min) / span, (400.0 - intensity.hu_min) / span
    weight = ndimage.gaussian_filter(bone.astype(np.float32), 0.7)
    weight[tgt >= LYTIC_CHANNEL] = 0.0
    return (x - weight * (1.0 - factor) * np.clip(x - soft, 0.0, cap - soft)).astype(np.float32)


def thick_slices(x: np.ndarray, axis: int, step: float) -> np.ndarray:
    """`x` as if acquired in slices `step` voxels thick and apart along `axis`, then interpolated back:
    each slice is the exact mean over its extent, voxel centres are interpolated linearly between
    slice centres (constant beyond the first and last)."""
    n = x.shape[axis]
    x = np.moveaxis(x, axis, -1)
    cum = np.concatenate([np.zeros((*x.shape[:-1], 1), x.dtype), np.cumsum(x, axis=-1)], axis=-1)

    def integral(t: np.ndarray) -> np.ndarray:  # of x from 0 to t (voxel k covers [k, k + 1))
        k = np.minimum(np.floor(t).astype(int), n - 1)
        return cum[..., k] + (t - k) * x[..., k]

    edges = np.minimum(np.arange(0.0, n + step, step), n)
    edges = edges[np.concatenate([[True], np.diff(edges) > 1e-6])]
    slices = (integral(edges[1:]) - integral(edges[:-1])) / np.diff(edges)
    centres = (edges[1:] + edges[:-1]) / 2
    pos = np.clip(np.arange(n) + 0.5, centres[0], centres[-1])
    i0 = np.clip(np.searchsorted(centres, pos, side="right") - 1, 0, len(centres) - 1)
    i1 = np.minimum(i0 + 1, len(centres) - 1)
    gap = np.where(i1 > i0, centres[i1] - centres[i0], 1.0)
    w = np.where(i1 > i0, (pos - centres[i0]) / gap, 0.0).astype(np.float32)
    out = slices[..., i0] * (1 - w) + slices[..., i1] * w
    return np.moveaxis(out.astype(np.float32), -1, axis)


def augment(
    img: np.ndarray,
    tgt: np.ndarray,
    rng: np.random.Generator,
    a: AugmentSettings,
    voxel_mm: float = 0.0,
    thin: bool = False,
):
    """SynthSeg-style intensity randomisation on a [0, 1] image, low bone density (`thin`: phantom
    patches), thick slices (fine patches of `voxel_mm`), and left-right flips."""
    x = np.clip(img, 0, 1)
    if thin and rng.random() < a.bone_density_share:
        x = thin_bone(x, tgt, rng.uniform(*a.bone_density), Intensity())
    if voxel_mm > 0 and rng.random() < a.thick_slice_share:
        step = rng.uniform(*a.thick_slice_mm) / voxel_mm
        if step > 1.2:
            x = np.clip(thick_slices(x, int(rng.choice(3, p=[0.15, 0.15, 0.7])), step), 0, 1)  # cumsum rounding
    x = x ** rng.uniform(*a.gamma)
    x = x * rng.uniform(*a.scale) + rng.uniform(*a.shift)
    sigma = rng.uniform(*a.blur_sigma_vox)
    if sigma > 0.2:
        x = ndimage.gaussian_filter(x, sigma)
    x = x + rng.normal(0, rng.uniform(*a.noise_std), x.shape)
    if a.flip_left_right and rng.random() < 0.5:  # canonical axis 0 is right-left
        x, tgt = x[::-1], tgt[::-1]
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(tgt)


# ------------------------------------------------------------------------------------------ training
def _initial_weights(model_dir: str | Path, cfg: TrainConfig) -> tuple[str, dict[str, torch.Tensor]]:
    """(sha256, state dict) of a trained model to start from (`load_model`: card, hash check,
    `weights_only`); its network must be the recipe's."""
    model = load_model(model_dir, torch.device("cpu"))
    if model.card.network != cfg.network:
        raise ModelError(f"--init {model_dir}: its network {model.card.network} is not the recipe's {cfg.network}")
    return model.card.sha256, model.net.state_dict()


@dataclass
class TrainState:
    iteration: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    init: dict[str, str] | None = None  # the trained model this run started from (`--init`)


def _use_bf16(cfg: TrainConfig) -> bool:
    if not cfg.bf16:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    work_dir: str | Path,
    log: Callable[[str], None] = lambda s: None,
    iterations: int | None = None,
    pool_cases: int | None = None,
    init: str | Path | None = None,
) -> ModelCard:
    """Run (or resume) the recipe; write `out_dir/model.pt` and its card. Returns the card. With
    `init` (a model folder) a new run starts from that model's weights at `optimiser.finetune_lr`."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n_cases = pool_cases if pool_cases is not None else cfg.data.phantom_cases
    total = iterations if iterations is not None else cfg.iterations
    paths = make_pool(cfg, work, range(cfg.data.phantom_seed, cfg.data.phantom_seed + n_cases), log)
    real_paths = make_real_pool(cfg, work, log)

    net = build_network(cfg.network)
    ckpt = work / "checkpoint.pt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=False) if ckpt.exists() else None
    state = TrainState(**saved["state"]) if saved is not None else TrainState()
    if saved is None and init is not None:
        digest, weights = _initial_weights(init, cfg)
        net.load_state_dict(weights)
        state.init = {"model": str(init), "sha256": digest}
        log(f"starting from {init} (sha256 {digest[:12]}...)")
    lr = cfg.optimiser.finetune_lr if state.init else cfg.optimiser.lr
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.optimiser.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
    dice_fn = MaskedDiceLoss(to_onehot_y=True, softmax=True)
    if saved is not None:
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        rng = np.random.default_rng([cfg.seed, state.iteration])
        log(f"resumed at iteration {state.iteration}")
    bf16 = _use_bf16(cfg)
    cache: dict[tuple[Path, bool], Sample] = {}
    patch = tuple(cfg.patch)
    net.train()
    t_start = time.perf_counter() - state.seconds
    while state.iteration < total:
        imgs, tgts = [], []
        for _ in range(cfg.batch_size):
            use_real = bool(real_paths) and rng.random() < cfg.data.real_share
            source = real_paths if use_real else paths
            path = source[int(rng.integers(len(source)))]
            coarse = bool(rng.random() < cfg.data.coarse_share)
            if (path, coarse) not in cache:
                if len(cache) >= cfg.data.cache_samples:  # bound memory
                    cache.pop(next(iter(cache)))
                cache[(path, coarse)] = load_sample(path, cfg, coarse)
            img, tgt = crop(cache[(path, coarse)], patch, rng, cfg.data)
            img, tgt = augment(img, tgt, rng, cfg.augment, 0.0 if coarse else cfg.spacing_mm, thin=not use_real)
            imgs.append(img)
            tgts.append(tgt)
        x = torch.from_numpy(np.stack(imgs))[:, None]
        y = torch.from_numpy(np.stack(tgts).astype(np.int64))[:, None]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        loss = masked_dice_ce(logits.float(), y, dice_fn, cfg.optimiser.not_lesion_weight)
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optimiser.max_grad_norm)
            opt.step()
        else:  # never let one bad batch poison the weights (and the checkpoint)
            log(f"iteration {state.iteration + 1}: non-finite loss, step skipped")
        sched.step()
        state.iteration += 1
        if torch.isfinite(loss):
            state.losses.append(float(loss.detach()))
        state.seconds = time.perf_counter() - t_start
        if state.iteration % 10 == 0:
            log(f"iteration {state.iteration}/{total} loss {np.mean(state.losses[-10:]):.4f} ({state.seconds:.0f} s)")
        if state.iteration % cfg.checkpoint_every == 0 or state.iteration == total:
            tmp = work / ".checkpoint.tmp"
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "state": dataclasses.asdict(state)}, tmp)  # fmt: skip
            tmp.replace(ckpt)
    net.eval()
    curve = [round(float(np.mean(state.losses[i : i + 50])), 4) for i in range(0, len(state.losses), 50)]
    card = ModelCard(
        name=cfg.name,
        network=cfg.network,
        spacing_mm=cfg.spacing_mm,
        coarse_spacing_mm=cfg.coarse_spacing_mm,
        patch=patch,  # type: ignore[arg-type]
        intensity=Intensity(),
        sha256="",
        training={
            "recipe": cfg.source,
            "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
            "data": f"{n_cases} phantoms, seeds {cfg.data.phantom_seed}..{cfg.data.phantom_seed + n_cases - 1}, "
            f"drawn at {cfg.spacing_mm} mm (pipeline.phantom.random_spec)",
            "real_scans": [p.stem.removeprefix("real_") for p in real_paths],
            "init": state.init,
            "iterations": state.iteration,
            "wall_time_s": round(state.seconds, 1),
            "bf16": bf16,
            "loss_curve_per_50_iterations": curve,
            "torch": torch.__version__,
        },
        metrics={},
    )
    return write_model(net, card, out_dir)


__all__ = ["N_CHANNELS", "TrainConfig", "load_train_config", "train"]
