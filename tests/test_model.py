"""The segmentation model: card, hash check, device choice, the training recipe, inference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from pipeline.config import CONFIG_DIR
from pipeline.errors import ConfigError, ModelError
from pipeline.model.card import DEFAULT_MODEL_DIR, file_sha256, load_model, read_card
from pipeline.model.classes import CHANNELS, from_prediction, to_target
from pipeline.model.infer import segment
from pipeline.model.network import resolve_device
from pipeline.model.train import Sample, _lesion_centre, _pieces, _posterior_rows, load_train_config, train

TINY = Path(__file__).parent / "data" / "train_tiny.yaml"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The recipe runs: two iterations of a tiny network on one small phantom."""
    root = tmp_path_factory.mktemp("tiny")
    card = train(load_train_config(TINY), root / "model", root / "work", iterations=2, pool_cases=1)
    assert card.training["iterations"] == 2
    return root / "model"


def test_training_smoke_writes_a_loadable_model(tiny_model: Path) -> None:
    card = read_card(tiny_model)
    assert card.sha256 == file_sha256(tiny_model / "model.pt")
    meta = json.loads((tiny_model / "metadata.json").read_text())
    assert meta["channel_def"] == {str(k): v for k, v in CHANNELS.items()}
    assert len(meta["training"]["loss_curve_per_50_iterations"]) == 1
    model = load_model(tiny_model, torch.device("cpu"))
    assert not model.net.training


def test_training_resumes_from_its_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    work = tiny_model.parent / "work"
    card = train(load_train_config(TINY), tmp_path / "again", work, iterations=3, pool_cases=1)
    assert card.training["iterations"] == 3  # 2 done before, 1 more


def test_tampered_weights_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    with open(copy / "model.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(ModelError, match="does not match the model card"):
        load_model(copy, torch.device("cpu"))


def test_corrupt_weights_with_a_matching_card_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    (copy / "model.pt").write_bytes(b"not a torch file")
    meta = json.loads((copy / "metadata.json").read_text())
    meta["sha256"] = file_sha256(copy / "model.pt")
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="cannot load the weights"):
        load_model(copy, torch.device("cpu"))


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model at"):
        read_card(tmp_path)


def test_device_choice() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ModelError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            resolve_device("cuda:0")


def test_targets_round_trip() -> None:
    anatomy = np.array([0, 1, 2, 1, 6], np.uint8)
    lesions = np.array([0, 0, 1, 2, 0], np.uint8)
    target = to_target(anatomy, lesions)
    assert target.tolist() == [0, 1, 8, 9, 6]
    back_anatomy, back_lesions = from_prediction(target)
    assert back_lesions.tolist() == lesions.tolist()
    assert back_anatomy.tolist() == [0, 1, 0, 0, 6]  # lesion voxels take their bone from the nearest later


def test_inference_runs_on_the_input_grid(tiny_model: Path) -> None:
    from pipeline.io import load_ct
    from pipeline.volume import to_canonical

    ct = to_canonical(load_ct(Path(__file__).parents[1] / "sample_cases" / "stable_L3_blastic" / "ct.nii.gz"))
    model = load_model(tiny_model, torch.device("cpu"))
    try:
        seg = segment(ct, model)
    except Exception as e:  # an untrained network may find no spine: that is a CaseError, said plainly
        assert "no spine found" in str(e)
        return
    assert seg.anatomy.shape == ct.shape and seg.lesions.shape == ct.shape


def test_channel_argmax_is_argmax() -> None:
    """`channel_argmax` (max's indices, faster on the CPU) gives argmax's labels, ties included."""
    from pipeline.model.infer import channel_argmax

    p = torch.rand((10, 30, 20, 12), generator=torch.Generator().manual_seed(3))
    assert torch.equal(channel_argmax(p), p.argmax(0))
    ties = torch.randint(0, 3, (10, 30, 20), generator=torch.Generator().manual_seed(4)).float()
    assert torch.equal(channel_argmax(ties), ties.argmax(0))


@pytest.mark.parametrize(
    ("fine", "out", "slab"),
    [((12, 10, 30), (30, 25, 97), 8), ((12, 10, 30), (20, 25, 11), 4), ((8, 9, 31), (20, 22, 9), 48)],
)
def test_upsampling_a_slab_at_a_time_equals_the_whole(fine: tuple, out: tuple, slab: int) -> None:
    """Probabilities back onto the CT grid a slab at a time give the labels of resizing the whole
    volume at once, whatever the slab and however the slices divide (an earlier slab rule came out
    one slice short on some grids, and was off by up to most of a slice on thick ones)."""
    from pipeline.model.infer import upsample_labels, zoom_to

    probs = torch.rand((5, *fine), generator=torch.Generator().manual_seed(1))
    whole = zoom_to(probs, out).argmax(0).numpy()
    got, widened = upsample_labels(probs, out, slab=slab)
    assert not widened.any()
    assert got.shape == whole.shape and np.mean(got != whole) < 1e-4  # float rounding may flip a near-tie


def test_lesion_probability_widens_posterior_element_lesions() -> None:
    """With a lesion probability, a voxel whose likeliest non-lesion class is posterior elements is a
    lesion of the likelier kind once lytic + blastic reach it, though bone wins the argmax; in the
    body, and below the threshold, the argmax stands. The widened voxels are marked as such."""
    from pipeline.model.classes import BLASTIC_CHANNEL, LYTIC_CHANNEL, N_CHANNELS
    from pipeline.model.infer import decide, upsample_labels

    p = torch.zeros((N_CHANNELS, 5))
    p[2, 0], p[LYTIC_CHANNEL, 0], p[BLASTIC_CHANNEL, 0] = 0.6, 0.25, 0.15  # posterior elements, lesions 0.4
    p[1, 1], p[LYTIC_CHANNEL, 1], p[BLASTIC_CHANNEL, 1] = 0.6, 0.25, 0.15  # the same in the body
    p[0, 2], p[2, 2], p[BLASTIC_CHANNEL, 2] = 0.42, 0.3, 0.28  # background likeliest: not posterior elements
    p[2, 3], p[LYTIC_CHANNEL, 3], p[BLASTIC_CHANNEL, 3] = 0.72, 0.1, 0.18  # lesions 0.28
    p[2, 4], p[LYTIC_CHANNEL, 4] = 0.3, 0.7  # the argmax's own lesion
    assert [t.tolist() for t in decide(p)] == [[2, 1, 0, 2, LYTIC_CHANNEL], [False] * 5]
    labels, widened = decide(p, 0.3)
    assert labels.tolist() == [LYTIC_CHANNEL, 1, 0, 2, LYTIC_CHANNEL]
    assert widened.tolist() == [True, False, False, False, False]
    assert decide(p, 0.25)[0].tolist() == [LYTIC_CHANNEL, 1, 0, BLASTIC_CHANNEL, LYTIC_CHANNEL]
    probs = torch.softmax(torch.randn((N_CHANNELS, 6, 5, 7), generator=torch.Generator().manual_seed(2)), 0)
    labels, widened = upsample_labels(probs, (6, 5, 7), slab=3, lesion_probability=0.2)  # the slab loop too
    want, want_widened = decide(probs, 0.2)
    assert np.array_equal(labels, want.numpy()) and np.array_equal(widened, want_widened.numpy())
    assert widened.any() and not np.array_equal(labels, decide(probs)[0].numpy())


def test_faint_check_judges_a_widened_piece_by_its_core() -> None:
    """A lytic piece whose argmax core is dark stays though the partial-volume rim `decide` adds makes
    its mean as bright as bone; without the core it is dropped as faint."""
    from pipeline.anatomy import Lesion
    from pipeline.model.infer import drop_faint_lesions

    hu = np.full((12, 12, 12), 200.0)
    lesions = np.zeros(hu.shape, np.uint8)
    lesions[3:9, 3:9, 3:9] = Lesion.LYTIC
    core = np.zeros(hu.shape, bool)
    core[5:7, 5:7, 5:7] = True
    hu[core] = 40.0  # 8 dark voxels in a 216-voxel piece: mean about 194 HU
    assert drop_faint_lesions(hu, lesions, 200.0, 30.0, 200.0)[1] == 1
    kept, dropped = drop_faint_lesions(hu, lesions, 200.0, 30.0, 200.0, core=core)
    assert dropped == 0 and np.array_equal(kept, lesions)
    elsewhere = np.zeros(hu.shape, bool)
    elsewhere[0, 0, 0] = True  # a core outside the piece: the piece is judged on all its voxels
    assert drop_faint_lesions(hu, lesions, 200.0, 30.0, 200.0, core=elsewhere)[1] == 1


def test_recipe_config_is_valid() -> None:
    cfg = load_train_config(CONFIG_DIR / "train.yaml")
    assert cfg.patch == (64, 64, 64) and cfg.spacing_mm > 0
    assert DEFAULT_MODEL_DIR.name == cfg.name


def test_lesion_patches_centre_on_pieces_uniformly() -> None:
    """`lesion_centre: piece`: a 3-voxel posterior lesion is a patch centre as often as a 1000-voxel
    body lesion (with "voxel" it would be 3 times in 1003)."""
    target = np.zeros((30, 30, 30), np.uint8)
    target[2:12, 2:12, 2:12] = 8
    target[25, 25, 24:27] = 9
    mask = target >= 8
    voxels = np.argwhere(mask)
    pieces = _pieces(mask, voxels)
    assert sorted(len(p) for p in pieces) == [3, 1000]
    sample = Sample(np.zeros(target.shape, np.float32), target, voxels, voxels, lesion_pieces=pieces)
    rng = np.random.default_rng(0)
    small = [_lesion_centre(sample, rng, "piece")[0] == 25 for _ in range(2000)]
    assert 0.45 < np.mean(small) < 0.55
    small = [_lesion_centre(sample, rng, "voxel")[0] == 25 for _ in range(2000)]
    assert np.mean(small) < 0.02


def test_lesion_patches_centre_on_posterior_lesions_at_their_share() -> None:
    """`lesion_centre: posterior`: a lesion voxel nearer the posterior elements than the body is a
    patch centre `posterior_share` of the time, however small its lesion; the rest is drawn as "voxel"."""
    target = np.zeros((30, 40, 30), np.uint8)
    target[5:25, 2:20, 5:25] = 1  # body
    target[5:25, 26:34, 5:25] = 2  # posterior elements
    target[8:18, 4:14, 8:18] = 8  # a 1000-voxel body lesion
    target[12, 23:25, 12] = 9  # a 2-voxel lesion by the posterior elements
    voxels = np.argwhere(target >= 8)
    rows = _posterior_rows(target, voxels)
    assert sorted(voxels[rows, 1].tolist()) == [23, 24]
    sample = Sample(np.zeros(target.shape, np.float32), target, voxels, voxels, posterior_rows=rows)
    rng = np.random.default_rng(0)
    near = [_lesion_centre(sample, rng, "posterior")[1] >= 23 for _ in range(2000)]
    assert 0.45 < np.mean(near) < 0.55
    near = [_lesion_centre(sample, rng, "posterior", 0.25)[1] >= 23 for _ in range(2000)]
    assert 0.2 < np.mean(near) < 0.3
    assert not len(_posterior_rows(np.where(target == 2, 0, target), voxels))  # no posterior elements


@pytest.mark.parametrize(
    ("line", "bad", "message"),
    [
        ("lesion_centre: voxel", "lesion_centre: voxels", "lesion_centre"),
        ("cache_samples: 200", "cache_samples: 0", "cache_samples"),
        ("posterior_share: 0.5", "posterior_share: 1.5", "posterior_share"),
    ],
)
def test_bad_data_settings_are_config_errors(tmp_path: Path, line: str, bad: str, message: str) -> None:
    text = (CONFIG_DIR / "train.yaml").read_text()
    assert line in text
    (tmp_path / "train.yaml").write_text(text.replace(line, bad))
    with pytest.raises(ConfigError, match=message):
        load_train_config(tmp_path / "train.yaml")


def test_real_training_targets_mark_the_unknown() -> None:
    """ts_abdomen_3mm as a training target: body and posterior elements from its reference labels,
    the canal and unlabelled bone ignored, air background."""
    from pipeline.model.classes import IGNORE
    from pipeline.model.real import draw_real

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
    if not (root / "tptbox_l3_crop").is_dir():
        pytest.skip("real data absent (../shared/data/real)")
    arrays = draw_real("tptbox_l3_crop", root, 1.5)
    target, hu = arrays["target"], arrays["hu"]
    assert set(np.unique(target).tolist()) == {0, 1, 2, IGNORE}
    assert np.median(hu[target == 1]) > 100  # bone
    assert (target[hu < -500] != IGNORE).all()  # air is known background


def test_synthetic_lesion_goes_into_bone_only() -> None:
    from pipeline.model.card import Intensity
    from pipeline.model.real import insert_lesion

    tgt = np.zeros((40, 40, 40), np.uint8)
    tgt[10:30, 10:30, 10:30] = 1
    img = np.zeros(tgt.shape, np.float32)
    insert_lesion(img, tgt, np.random.default_rng(1), 1.5, Intensity())
    lesion = tgt >= 8
    assert lesion.any() and (lesion[:10] == 0).all() and (lesion[30:] == 0).all()
    assert len(np.unique(tgt[lesion])) == 1


def test_a_synthetic_lesion_in_real_bone_can_have_a_soft_edge() -> None:
    from scipy import ndimage

    from pipeline.model.card import Intensity
    from pipeline.model.classes import LYTIC_CHANNEL
    from pipeline.model.real import LYTIC_HU, insert_lesion

    intensity = Intensity()
    span = intensity.hu_max - intensity.hu_min
    tgt = np.zeros((40, 40, 40), np.uint8)
    tgt[5:35, 5:35, 5:35] = 1
    img = np.full(tgt.shape, (150.0 - intensity.hu_min) / span, np.float32)
    insert_lesion(img, tgt, np.random.default_rng(3), 1.5, intensity, lytic_share=1.0, edge_mm=(1.5, 1.5))
    hu = img * span + intensity.hu_min
    lesion = tgt == LYTIC_CHANNEL
    assert lesion.any() and (tgt[~lesion] <= 1).all()  # all lytic, nothing else relabelled
    core = ndimage.binary_erosion(lesion, iterations=3)
    assert LYTIC_HU[0] - 30 < np.median(hu[core]) < LYTIC_HU[1] + 30
    rim = ndimage.binary_dilation(lesion) & ~lesion
    assert (hu[rim] < 149.0).all()  # partial volume: the edge is blended into the bone around it
    far = ~ndimage.binary_dilation(lesion, iterations=6)
    assert np.allclose(hu[far], 150.0, atol=0.01)


def test_thick_slices_average_along_one_axis() -> None:
    from pipeline.model.train import thick_slices

    x = np.zeros((4, 4, 30), np.float32)
    x[..., 15] = 1.0
    y = thick_slices(x, 2, 3.0)
    assert y.shape == x.shape
    assert np.allclose(y.sum(axis=2), 1.0, atol=1e-5)  # intensity is kept, only spread
    assert y[..., 15].max() < 0.5 and (y[:, :, :10] == 0).all()


SAMPLES = Path(__file__).resolve().parents[1] / "sample_cases"


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.iterdir() if (p / "truth.json").exists()))
def test_shipped_model_scores_the_sample_cases(name: str) -> None:
    """The shipped network, end to end on CPU (no label maps): the truth's levels, lesion levels and
    category on every bundled sample case."""
    from pipeline.analyze import AnalyzeRequest, analyze_case

    case_dir = SAMPLES / name
    truth = json.loads((case_dir / "truth.json").read_text())
    req = AnalyzeRequest(ct=case_dir / "ct.nii.gz", case_id=name, clinical_csv=case_dir / "clinical.csv", device="cpu")
    case = analyze_case(req).case
    assert [lv.level for lv in case.levels] == [lv["level"] for lv in truth["levels"]]
    assert list(case.summary.lesion_levels) == truth["summary"]["lesion_levels"]
    assert case.summary.category == truth["summary"]["category"]
    assert case.software.model_sha256 == read_card(DEFAULT_MODEL_DIR).sha256


def test_thin_network_lesions_are_dropped() -> None:
    from pipeline.model.infer import drop_thin_lesions

    lesions = np.zeros((40, 40, 40), np.uint8)
    lesions[5:15, 5:15, 5:7] = 2  # two slices thick: partial-volume endplate on thick slices
    lesions[20:30, 20:30, 20:30] = 1  # a lesion
    lesions[32:36, 5:8, 5:8] = 1  # small but three voxels thick every way
    out, dropped = drop_thin_lesions(lesions, 3)
    assert dropped == 1
    assert not out[5:15, 5:15, 5:7].any()
    assert (out[20:30, 20:30, 20:30] == 1).all() and (out[32:36, 5:8, 5:8] == 1).all()


def test_thickness_is_a_digital_ball_of_that_diameter() -> None:
    """Three voxels thick: the 3x3x3 block less its corners fits. A block missing a corner is kept (a
    small pedicle lesion the network draws in part, 09008 L3); a cross of six voxels round one is not."""
    from pipeline.model.infer import drop_thin_lesions

    lesions = np.zeros((20, 20, 20), np.uint8)
    lesions[2:5, 2:5, 2:5] = 1
    lesions[2, 2, 2] = 0  # the block less one corner
    lesions[10:13, 11, 11] = lesions[11, 10:13, 11] = lesions[11, 11, 10:13] = 1  # the cross
    out, dropped = drop_thin_lesions(lesions, 3)
    assert dropped == 1
    assert out[2:5, 2:5, 2:5].sum() == 26 and not out[10:13, 10:13, 10:13].any()


def test_faint_network_lesions_are_dropped() -> None:
    """A lesion piece must stand out from the patient's bone (median HU of the lesion-free bodies)."""
    from pipeline.model.infer import bone_interior, bone_reference_hu, drop_faint_lesions

    hu = np.full((40, 40, 40), -100.0, np.float32)
    anatomy = np.zeros(hu.shape, np.uint8)
    anatomy[2:38, 2:38, 2:38] = 1  # vertebral body, cancellous 200 HU
    hu[anatomy == 1] = 200.0
    lesions = np.zeros(hu.shape, np.uint8)
    pieces = [
        (np.s_[4:10, 4:10, 4:10], 1, 40.0),  # lytic, 160 HU darker: kept
        (np.s_[4:10, 20:26, 4:10], 1, 170.0),  # lytic, 30 HU darker: dropped
        (np.s_[20:26, 4:10, 4:10], 2, 900.0),  # blastic, 700 HU brighter: kept
        (np.s_[20:26, 20:26, 4:10], 2, 300.0),  # blastic, 100 HU brighter: dropped
        (np.s_[30:36, 30:36, 30:36], 1, -90.0),  # fat-dark: darker than bone, kept by this check
    ]
    for box, kind, value in pieces:
        lesions[box] = kind
        anatomy[box] = 0  # the network's anatomy is 0 under a lesion
        hu[box] = value
    reference = bone_reference_hu(hu, bone_interior(anatomy, lesions, (1.0, 1.0, 1.0), 2.0))
    assert reference == 200.0
    out, dropped = drop_faint_lesions(hu, lesions, reference, 50.0, 200.0)
    assert dropped == 2
    assert [value for box, kind, value in pieces if (out[box] == kind).all()] == [40.0, 900.0, -90.0]
    assert bone_reference_hu(hu, bone_interior(np.zeros_like(anatomy), lesions, (1.0, 1.0, 1.0), 2.0)) is None
    assert drop_faint_lesions(hu, lesions, None, 50.0, 200.0)[1] == 0  # no bone: no reference, nothing dropped


def test_uniformly_dark_bone_is_not_a_lesion_everywhere() -> None:
    """Osteoporotic bone (cancellous 60 HU inside a dense cortex) the network calls lytic in every
    body: the interior sets the reference itself, so the pieces do not stand out and are dropped."""
    from pipeline.model.infer import bone_interior, bone_reference_hu, drop_faint_lesions

    hu = np.full((30, 30, 60), -100.0, np.float32)
    anatomy = np.zeros(hu.shape, np.uint8)
    lesions = np.zeros(hu.shape, np.uint8)
    for z0 in (2, 22, 42):  # three bodies: 1-voxel cortex of 900 HU, interior marked lytic at 60 HU
        anatomy[5:25, 5:25, z0 : z0 + 16] = 1
        hu[5:25, 5:25, z0 : z0 + 16] = 900.0
        lesions[6:24, 6:24, z0 + 1 : z0 + 15] = 1
        anatomy[6:24, 6:24, z0 + 1 : z0 + 15] = 0
        hu[6:24, 6:24, z0 + 1 : z0 + 15] = 60.0
    reference = bone_reference_hu(hu, bone_interior(anatomy, lesions, (1.0, 1.0, 1.0), 2.0))
    assert reference == 60.0
    assert drop_faint_lesions(hu, lesions, reference, 30.0, 200.0)[1] == 3


def test_sclerotic_rim_of_a_lytic_piece_becomes_blastic() -> None:
    """Bright bone in or around a lytic piece (a mixed lesion's rim the network drew as bone or lytic)
    is blastic; the cortex (outside the bodies' interior) and bright bone far from the piece are not."""
    from pipeline.anatomy import Lesion
    from pipeline.model.infer import bone_interior, mark_sclerotic_rim

    spacing = (1.0, 1.0, 2.0)
    hu = np.full((40, 40, 24), -100.0, np.float32)
    anatomy = np.zeros(hu.shape, np.uint8)
    anatomy[2:38, 2:38, 1:23] = 1
    hu[2:38, 2:38, 1:23] = 900.0  # cortex
    hu[4:36, 4:36, 2:22] = 200.0  # cancellous bone
    hu[10:22, 10:22, 6:16] = 700.0  # a sclerotic rim, 2 mm (in-plane) and 2 mm (one slice) thick ...
    hu[12:20, 12:20, 7:15] = 40.0  # ... around a lytic core
    hu[30:34, 30:34, 10:12] = 700.0  # a bone island far from any lesion
    lesions = np.zeros(hu.shape, np.uint8)
    lesions[12:20, 12:20, 7:15] = Lesion.LYTIC
    lesions[13:19, 13:19, 15] = Lesion.LYTIC  # the network's lytic piece takes in part of the rim too
    anatomy[lesions > 0] = 0
    interior = bone_interior(anatomy, lesions, spacing, 2.0)
    out, n = mark_sclerotic_rim(hu, lesions, interior, spacing, 200.0 + 200.0, 2.0)
    near = ndimage.distance_transform_edt(lesions != Lesion.LYTIC, sampling=spacing) <= 2.0
    rim = near & (hu >= 400.0)  # the rim's voxels within 2 mm of the piece (its corners lie farther)
    assert n == int(rim.sum()) > 400 and (out[rim] == Lesion.BLASTIC).all()
    assert (out[13:19, 13:19, 15] == Lesion.BLASTIC).all()
    assert (out[12:20, 12:20, 7:14] == Lesion.LYTIC).all()
    assert not out[30:34, 30:34, 10:12].any() and not out[:, :, 0:2].any()  # bone island, cortex
    assert mark_sclerotic_rim(hu, lesions, interior, spacing, 400.0, 0.0)[1] == 0  # turned off


def test_rim_next_voxel_only_round_lytic_pieces_that_stand_out() -> None:
    """At voxels over `network_rim_mm` the rim's distance reaches nothing outside a lytic piece; its next
    voxels (`network_rim_voxels`) become blastic where bright, but only round a lytic piece the faint
    check keeps: bright bone next to a faint piece is not made a blastic lesion of its own."""
    import dataclasses

    from pipeline.anatomy import Lesion
    from pipeline.config import load_sins_config
    from pipeline.model.infer import check_lesions

    spacing = (2.3, 2.3, 2.3)
    hu = np.full((40, 40, 24), -100.0, np.float32)
    anatomy = np.zeros(hu.shape, np.uint8)
    anatomy[2:38, 2:38, 1:23] = 1
    hu[2:38, 2:38, 1:23] = 900.0  # cortex
    hu[3:37, 3:37, 2:22] = 200.0  # cancellous bone: the reference
    lesions = np.zeros(hu.shape, np.uint8)
    for lo, core_hu in ((9, 40.0), (24, 190.0)):  # a lytic core, and a piece no darker than the bone
        hu[lo : lo + 8, lo : lo + 8, 7:15] = 700.0  # a one-voxel sclerotic rim ...
        hu[lo + 1 : lo + 7, lo + 1 : lo + 7, 8:14] = core_hu  # ... round the piece the network calls lytic
        lesions[lo + 1 : lo + 7, lo + 1 : lo + 7, 8:14] = Lesion.LYTIC
    anatomy[lesions > 0] = 0
    t = load_sins_config(None).lesion
    out, notes = check_lesions(hu, anatomy, lesions, spacing, t)
    ring = np.zeros(hu.shape, bool)
    ring[9:17, 9:17, 7:15] = True
    ring[10:16, 10:16, 8:14] = False
    assert t.network_rim_voxels == 1 and (out[ring] == Lesion.BLASTIC).all()
    assert (out[10:16, 10:16, 8:14] == Lesion.LYTIC).all()
    assert not out[22:34, 22:34].any()  # the faint piece dropped, its bright neighbours left to bone
    assert any("kept, counted as blastic" in n for n in notes)
    off, _ = check_lesions(hu, anatomy, lesions, spacing, dataclasses.replace(t, network_rim_voxels=0))
    assert not off[ring].any()  # the 2 mm rim alone reaches nothing at 2.3 mm voxels


def test_bone_density_augmentation_darkens_bone_only() -> None:
    from pipeline.model.card import Intensity
    from pipeline.model.train import thin_bone

    intensity = Intensity()
    span = intensity.hu_max - intensity.hu_min
    tgt = np.zeros((30, 30, 30), np.uint8)
    tgt[5:25, 5:25, 5:25] = 1
    tgt[12:18, 12:18, 12:18] = 8  # a lytic lesion inside the bone
    hu = np.where(tgt == 1, 220.0, np.where(tgt == 8, 35.0, -100.0))
    x = ((hu - intensity.hu_min) / span).astype(np.float32)
    y = thin_bone(x, tgt, 0.5, intensity) * span + intensity.hu_min
    assert np.allclose(y[15, 15, 8], 40 + 0.5 * 180, atol=1.0)  # cancellous halfway to soft tissue
    assert np.allclose(y[15, 15, 15], 35.0, atol=1e-3) and np.allclose(y[0, 0, 0], -100.0, atol=1e-3)
    assert np.array_equal(thin_bone(x, tgt, 1.0, intensity), x)


def test_unknown_voxels_are_taught_not_lesion() -> None:
    """The loss term on voxels of unknown anatomy (IGNORE) pushes their lesion probability down."""
    from monai.losses import MaskedDiceLoss

    from pipeline.model.classes import IGNORE, LYTIC_CHANNEL
    from pipeline.model.train import masked_dice_ce

    logits = torch.zeros((1, len(CHANNELS), 4, 4, 4), requires_grad=True)
    target = torch.full((1, 1, 4, 4, 4), IGNORE, dtype=torch.long)
    target[..., :2] = 0
    dice = MaskedDiceLoss(to_onehot_y=True, softmax=True)
    base = masked_dice_ce(logits, target, dice, 0.0)
    loss = masked_dice_ce(logits, target, dice, 1.0)
    assert float(loss.detach()) > float(base.detach())
    loss.backward()
    grad = logits.grad[0, :, 0, 0, 3]  # an unknown voxel
    assert grad[LYTIC_CHANNEL] > 0 and grad[0] < 0  # descent lowers lesion, raises the rest


def test_training_can_start_from_a_trained_model(tiny_model: Path, tmp_path: Path) -> None:
    cfg = load_train_config(TINY)
    card = train(cfg, tmp_path / "ft", tmp_path / "work", iterations=1, pool_cases=1, init=tiny_model)
    assert card.training["init"] == {"model": str(tiny_model), "sha256": read_card(tiny_model).sha256}


def test_centroids_in_one_pass() -> None:
    from scipy import ndimage

    from pipeline.spine.labels import centroids

    labels = np.zeros((20, 20, 20), np.int32)
    labels[2:5, 3:9, 4:6] = 3
    labels[10:18, 10:12, 1:19] = 7
    got = centroids(labels, [3, 7, 5, 40])
    assert np.allclose(got[:2], ndimage.center_of_mass(labels > 0, labels, [3, 7]))
    assert np.isnan(got[2:]).all()


def test_voxels_of_dropped_lesions_go_back_to_the_nearest_bone() -> None:
    from pipeline.model.infer import refill_bone

    anatomy = np.zeros((20, 20, 20), np.uint8)
    anatomy[2:18, 2:10, 2:18] = 1  # body
    anatomy[2:18, 10:18, 2:18] = 2  # posterior elements
    holes = np.zeros(anatomy.shape, bool)
    holes[6:9, 6:9, 6:9] = holes[6:9, 11:14, 6:9] = True
    anatomy[holes] = 0
    refill_bone(anatomy, holes, (1.0, 1.0, 1.0))
    assert (anatomy[6:9, 6:9, 6:9] == 1).all() and (anatomy[6:9, 11:14, 6:9] == 2).all()


def test_shipped_model_finds_both_vertebrae_of_the_dicom_slab(real_data: Path, tmp_path: Path) -> None:
    """ts_dicom_thoracolumbar (unseen; 20 slices of 2 mm through the T11/T12 disc) from its DICOM folder:
    the network joins the two bodies around a partly drawn disc; the disc cut gives T11 back. Both are
    truncated, no lesion; the instance named T11 lies mostly on the reference's T11."""
    from pipeline.cli import main
    from pipeline.io import load_ct, load_label_map

    folder = real_data / "ts_dicom_thoracolumbar"
    out = tmp_path / "out"
    assert main(["analyze", str(folder / "dicom"), "--lowest-level", "T12", "--out", str(out)]) == 0
    doc = json.loads((out / "sins.json").read_text())
    assert [(lv["level"], lv["complete"], lv["lesion"]) for lv in doc["levels"]] == [
        ("T11", False, False),
        ("T12", False, False),
    ]
    names = {v: int(k) for k, v in json.loads((out / "segmentation_labels.json").read_text())["labels"].items()}
    ct = load_ct(folder / "dicom")
    ours = load_label_map(out / "segmentation.nii.gz", ct).array
    ref = load_label_map(folder / "segmentation_totalseg.nii.gz", ct).array
    t11 = ours == names["T11"]
    assert np.count_nonzero(t11 & (ref == 33)) > 3 * np.count_nonzero(t11 & (ref == 32))


def test_faint_check_reads_a_pieces_median_hu() -> None:
    """A lytic piece of 40 HU with a third of it bright partial volume against the blastic part of a
    mixed lesion (800 HU) has a mean above the bone's (200 HU) but stands out by its median: kept."""
    from pipeline.anatomy import Lesion
    from pipeline.model.infer import drop_faint_lesions

    hu = np.full((12, 12, 12), 200.0)
    lesions = np.zeros(hu.shape, np.uint8)
    lesions[3:9, 3:9, 3:9] = Lesion.LYTIC
    hu[3:9, 3:9, 3:9] = 40.0
    hu[3:9, 3:9, 3:5] = 800.0  # 72 of 216 voxels: mean 293 HU, median 40 HU
    assert hu[lesions > 0].mean() > 200.0
    kept, dropped = drop_faint_lesions(hu, lesions, 200.0, 30.0, 200.0)
    assert dropped == 0 and np.array_equal(kept, lesions)
    hu[3:9, 3:9, 3:7] = 800.0  # most of it bright: dropped
    assert drop_faint_lesions(hu, lesions, 200.0, 30.0, 200.0)[1] == 1


def test_a_body_lesions_partial_volume_edge_joins_it() -> None:
    """One voxel around a network lesion joins it where the voxel is more lesion than bone by its HU:
    against the cortex (900 HU) a 300 HU voxel is mostly lesion (35 HU), against cancellous bone
    (220 HU) a 100 HU voxel is, a 200 HU voxel is not. A blastic piece does not take the cortex."""
    from pipeline.anatomy import Anatomy, Lesion
    from pipeline.model.infer import bone_interior, grow_lesions

    hu = np.full((20, 20, 20), -100.0)
    anatomy = np.zeros(hu.shape, np.uint8)
    anatomy[2:18, 2:18, 2:18] = Anatomy.VERTEBRAL_BODY
    hu[2:18, 2:18, 2:18] = 900.0  # cortex, one voxel thick
    hu[3:17, 3:17, 3:17] = 220.0  # cancellous bone
    lesions = np.zeros(hu.shape, np.uint8)
    lesions[4:9, 6:11, 6:11] = Lesion.LYTIC  # the network's lesion, one voxel short of the cortex at x = 2
    hu[4:9, 6:11, 6:11] = 35.0
    hu[3, 5:12, 5:12] = 300.0  # the 49 voxels between it and the cortex: lesion and cortex, join
    hu[9, 7, 7] = 100.0  # lesion and cancellous bone: joins
    hu[9, 8, 8] = 200.0  # mostly cancellous bone: stays bone
    hu[10, 7, 7] = 100.0  # two voxels out: stays bone with one edge voxel
    lesions[13:16, 13:16, 13:16] = Lesion.BLASTIC
    hu[13:16, 13:16, 13:16] = 900.0
    hu[12, 14, 14] = 700.0  # blastic edge in cancellous bone: joins
    hu[16, 14, 14] = 900.0  # next to the cortex, not the interior: stays bone
    anatomy[lesions > 0] = 0
    interior = bone_interior(anatomy, lesions, (1.0, 1.0, 1.0), 2.0)
    out, added = grow_lesions(hu, anatomy, lesions, interior, 220.0, 1, 1)
    assert (out[3, 5:12, 5:12] == Lesion.LYTIC).all() and out[9, 7, 7] == Lesion.LYTIC
    assert out[12, 14, 14] == Lesion.BLASTIC
    assert out[9, 8, 8] == out[10, 7, 7] == out[16, 14, 14] == 0
    assert added == np.count_nonzero(out) - np.count_nonzero(lesions) == 49 + 1 + 1
    assert grow_lesions(hu, anatomy, lesions, interior, 220.0, 0, 1)[1] == 0  # 0 turns it off
    assert grow_lesions(hu, anatomy, lesions, interior, 220.0, 2, 1)[0][10, 7, 7] == Lesion.LYTIC
    out, added = grow_lesions(hu, anatomy, lesions, interior, 220.0, 1, min_voxels=100)  # 125 and 27 voxels
    assert added == 50 and out[12, 14, 14] == 0  # the small blastic piece does not grow


def test_a_blastic_piece_spreads_through_the_bodies_bright_interior_only() -> None:
    """A blastic body piece takes the bright voxels of the bodies' interior continuous with it (at least the
    contrast over the bone reference) up to the reach; the cortex, fainter bone and the posterior elements stay
    bone, however bright (the pedicle's cortex is as bright as sclerotic bone); 0 mm turns it off."""
    from pipeline.anatomy import Anatomy, Lesion
    from pipeline.model.infer import bone_interior, spread_blastic

    hu = np.full((12, 60, 12), -100.0)
    anatomy = np.zeros(hu.shape, np.uint8)
    anatomy[1:11, 1:12, 1:11] = Anatomy.VERTEBRAL_BODY
    hu[1:11, 1:12, 1:11] = 220.0  # cancellous bone, the reference
    anatomy[4:8, 12:59, 4:8] = Anatomy.POSTERIOR_ELEMENTS
    hu[4:8, 12:59, 4:8] = 350.0
    lesions = np.zeros(hu.shape, np.uint8)
    lesions[3:9, 6:12, 3:9] = Lesion.BLASTIC
    hu[3:9, 6:12, 3:9] = 900.0
    anatomy[lesions > 0] = 0
    hu[4:8, 12:20, 4:8] = 650.0  # bright pedicle continuous with the piece: stays bone
    hu[5, 3:6, 5] = 400.0  # the bodies' interior, 180 HU over the bone: joins
    hu[5, 1:3, 5] = 400.0  # as bright, but the cortex (not 2 mm deep): stays bone
    hu[6, 5, 6] = 350.0  # 130 HU over the bone: stays bone
    interior = bone_interior(anatomy, lesions, (1.0, 1.0, 1.0), 2.0)
    args = (interior, 220.0, (1.0, 1.0, 1.0))
    out, added = spread_blastic(hu, anatomy, lesions, *args, 20.0, 150.0)
    assert (out[5, 3:6, 5] == Lesion.BLASTIC).all() and added == 3
    assert not out[:, 12:].any()  # the posterior elements
    assert not out[5, 1:3, 5].any() and out[6, 5, 6] == 0
    near, added = spread_blastic(hu, anatomy, lesions, *args, 1.0, 150.0)
    assert added == 1 and near[5, 5, 5] == Lesion.BLASTIC  # the reach
    assert spread_blastic(hu, anatomy, lesions, *args, 20.0, 200.0)[1] == 0
    assert spread_blastic(hu, anatomy, lesions, *args, 0.0, 150.0)[1] == 0
    assert spread_blastic(hu, anatomy, lesions, interior, None, (1.0, 1.0, 1.0), 20.0, 150.0)[1] == 0
    # a piece under min_voxels spreads only within the reach of a piece of at least that size (lytic and
    # blastic voxels together): a lone speck must not grow into a lesion level
    assert spread_blastic(hu, anatomy, lesions, *args, 20.0, 150.0, 216)[1] == 3
    assert spread_blastic(hu, anatomy, lesions, *args, 20.0, 150.0, 217)[1] == 0
    mixed = lesions.copy()
    mixed[3:9, 6:12, 2] = Lesion.LYTIC  # 36 lytic voxels against the blastic piece: 252 together
    assert spread_blastic(hu, anatomy, mixed, *args, 20.0, 150.0, 250)[1] == 3
    near_big = lesions.copy()
    near_big[4:8, 40:50, 4:8] = Lesion.LYTIC  # 160 voxels, 29 mm from the blastic piece: neither counts
    assert spread_blastic(hu, anatomy, near_big, *args, 20.0, 150.0, 250)[1] == 0
    near_big[4:8, 30:40, 4:8] = Lesion.LYTIC  # now 320 voxels, 19 mm from it: the blastic piece is its part
    assert spread_blastic(hu, anatomy, near_big, *args, 20.0, 150.0, 250)[1] == 3


def test_a_sphere_in_a_body_is_clipped_to_the_body_and_the_grid() -> None:
    """The insertion helper of bench/real_insertion.py: a sphere at a share of the body's depth from its back,
    inside the body only, and a sphere reaching past the grid's edge is cut there."""
    from pipeline.model.real import sphere_in_body, with_lesion

    body = np.zeros((30, 30, 30), bool)
    body[5:25, 10:21, 5:25] = True  # y 10..20: the back at y = 10
    mid = sphere_in_body(body, np.ones(3), 4.0, 0.5)  # the centroid (14.5, 10 + 0.5 * 10, 14.5)
    x, y, z = np.indices(body.shape)
    assert (mid == ((x - 14.5) ** 2 + (y - 15) ** 2 + (z - 14.5) ** 2 <= 16)).all()
    back = sphere_in_body(body, np.ones(3), 4.0, 0.0)  # centre on the back wall: the half inside
    assert back.any() and not back[:, :10].any() and back[:, 10:15].any() and not back[:, 15:].any()
    whole = sphere_in_body(body, np.ones(3), 40.0, 0.5)
    assert (whole == body).all()
    hu = with_lesion(np.full(body.shape, 200.0), mid, 1000.0, np.ones(3), 0.6)
    assert hu[14, 15, 14] > 990.0 and hu[0, 0, 0] == 200.0


def test_a_blastic_lesion_at_the_back_of_a_real_body_stays_out_of_its_posterior_elements(real_data: Path) -> None:
    """ts_abdomen_3mm with a synthetic blastic lesion (1000 HU, 10 mm radius) at the back of T12's body: the
    network finds it in the body, and no lesion reaches T12's posterior elements (real cortex is as bright as
    sclerotic bone; at 0.12.0 the spread took 1.6 mL of the pedicle's cortex into it, a false posterior side)."""
    from pipeline.anatomy import TOTALSEG_IDS
    from pipeline.config import load_sins_config
    from pipeline.io import load_ct, load_label_map
    from pipeline.model.real import sphere_in_body, with_lesion
    from pipeline.volume import to_canonical

    folder = real_data / "ts_abdomen_3mm"
    ct = to_canonical(load_ct(folder / "ct.nii.gz"))
    t12 = to_canonical(load_label_map(folder / "vertebrae_totalseg.nii.gz")).array == TOTALSEG_IDS["T12"]
    body = t12 & (to_canonical(load_label_map(folder / "vertebral_body_disc.nii.gz")).array == 1)
    spacing = np.asarray(ct.spacing)
    lesion = sphere_in_body(body, spacing, 10.0, 0.1)  # near the back
    hu = with_lesion(ct.array, lesion, 1000.0, spacing, 0.6)  # a little partial volume
    cfg = load_sins_config(None)
    seg = segment(ct.with_array(hu), load_model(DEFAULT_MODEL_DIR, torch.device("cpu")), cfg.lesion)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    assert np.count_nonzero((seg.lesions > 0) & body) * voxel_ml > 0.5
    assert np.count_nonzero((seg.lesions > 0) & t12 & ~body) * voxel_ml < cfg.posterolateral.min_side_volume_ml


def test_mirrored_pass_averages_the_posterior_elements_only() -> None:
    """Where the likeliest class is posterior elements the probabilities become the mean of the two
    passes; elsewhere (the bodies, the lesions) the single pass is kept."""
    from pipeline.anatomy import Anatomy
    from pipeline.model.infer import average_mirrored_posterior

    p = torch.softmax(torch.randn((10, 6, 5, 4), generator=torch.Generator().manual_seed(1)), 0)
    p[int(Anatomy.POSTERIOR_ELEMENTS), :3] += 1.0  # posterior elements in the first half
    p[int(Anatomy.VERTEBRAL_BODY), 3:] += 1.0
    p /= p.sum(0)
    q = torch.softmax(torch.randn(p.shape, generator=torch.Generator().manual_seed(2)), 0)
    before = p.clone()
    assert average_mirrored_posterior(p, q) == 3 * 5 * 4
    assert torch.allclose(p[:, :3], 0.5 * (before[:, :3] + q[:, :3]))
    assert torch.equal(p[:, 3:], before[:, 3:])
