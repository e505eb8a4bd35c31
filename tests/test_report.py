"""Reports and label files (issue #5): what `write_outputs` writes besides sins.json and levels.csv.

The sample case (unstable T12, lytic collapse) is analysed once per module; the label files must
open in nibabel and SimpleITK on the CT's grid with one name and colour per id in every format;
the page must be self-contained (every image a data URI that decodes) and render in headless
Chromium with every image loaded (skipped when Chromium is absent).
"""

from __future__ import annotations

import base64
import itertools
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.analyze import AnalyzeRequest, analyze_case, write_outputs
from pipeline.report.html import item_rows
from pipeline.report.views import coronal_xy, sagittal_xy, spine_reformats
from pipeline.schema import LevelResult, Measurements, SinsItems

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_cases" / "unstable_T12_lytic_collapse"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    req = AnalyzeRequest(
        ct=SAMPLE / "ct.nii.gz", labels=SAMPLE / "anatomy.nii.gz", lesions=SAMPLE / "lesions.nii.gz", pain="mechanical"
    )
    write_outputs(analyze_case(req), out)
    return out


def _itksnap(path: Path) -> dict[int, tuple[str, tuple[int, int, int]]]:
    rows = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d.]+\s+[01]\s+[01]\s+"(.*)"$', line)
        assert m, line
        rows[int(m[1])] = (m[5], (int(m[2]), int(m[3]), int(m[4])))
    return rows


def _ctbl(path: Path) -> dict[int, tuple[str, tuple[int, int, int]]]:
    rows = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        idx, name, r, g, b, _alpha = line.split()
        rows[int(idx)] = (name, (int(r), int(g), int(b)))
    return rows


def test_label_files_name_every_id_with_one_colour(sample_out: Path) -> None:
    import json

    doc = json.loads((sample_out / "segmentation_labels.json").read_text())
    names = {int(k): v for k, v in doc["labels"].items()}
    colours = {int(k): tuple(v) for k, v in doc["colours"].items()}
    assert names[19] == "T12" and names[101] == "lesion lytic" and names[102] == "lesion blastic"
    seg = np.asarray(nib.load(sample_out / "segmentation.nii.gz").dataobj)
    assert set(np.unique(seg).tolist()) - {0} <= set(names)
    snap = _itksnap(sample_out / "segmentation.itksnap.txt")
    assert snap.pop(0)[0] == "Clear Label"
    assert snap == {k: (names[k], colours[k]) for k in names}
    slicer = _ctbl(sample_out / "segmentation.ctbl")
    assert slicer.pop(0)[0] == "Background"
    assert slicer == {k: (names[k].replace(" ", "_"), colours[k]) for k in names}
    level_ids = sorted(k for k in names if k < 100)
    for upper, lower in itertools.pairwise(level_ids):  # neighbours never share a colour
        assert colours[upper] != colours[lower]


def test_segmentation_on_the_input_grid_in_nibabel_and_simpleitk(sample_out: Path) -> None:
    img, ct = nib.load(sample_out / "segmentation.nii.gz"), nib.load(SAMPLE / "ct.nii.gz")
    assert img.shape == ct.shape and np.allclose(img.affine, ct.affine, atol=1e-4)
    assert img.get_data_dtype() in (np.uint8, np.uint16)
    s, c = sitk.ReadImage(str(sample_out / "segmentation.nii.gz")), sitk.ReadImage(str(SAMPLE / "ct.nii.gz"))
    assert s.GetSize() == c.GetSize()
    assert np.allclose(s.GetOrigin(), c.GetOrigin(), atol=1e-3) and np.allclose(s.GetSpacing(), c.GetSpacing())
    assert np.allclose(s.GetDirection(), c.GetDirection(), atol=1e-5)


def test_report_is_self_contained_with_every_item(sample_out: Path) -> None:
    files = {p.name for p in sample_out.iterdir()}
    assert {"overview.png", "level_T12.png", "report.html"} <= files
    assert (sample_out / "overview.png").read_bytes().startswith(PNG_MAGIC)
    page = (sample_out / "report.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 2  # overview and the one lesion level
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert not re.search(r"https?:|//[a-z]|<link|@import|url\(|<script", text)  # nothing fetched
    assert "@media print" in page
    for item in ("Location", "Pain", "Bone lesion", "Spinal alignment", "Vertebral body collapse",
                 "Posterolateral involvement"):  # fmt: skip
        assert f"<td>{item}</td>" in page
    assert "given by the clinician" in page and "derived from the level name" in page
    assert "98db21e3" in page or "configuration sha256" in page
    assert "OpenSINS 0." in page


def _level(pain: int | None, location: int) -> LevelResult:
    total = None if pain is None else location + pain + 2 + 4 + 3 + 3
    s = SinsItems(location, pain, 2, 4, 3, 3, total, location + 12, location + 15, None if pain is None else "unstable")
    return LevelResult("T12", True, True, Measurements(height_anterior_mm=8.0), s)


def test_item_rows_say_where_each_item_came_from() -> None:
    rows = {r[0]: r for r in item_rows(_level(None, 3))}
    assert rows["Pain"][1] == "n/a" and "missing" in rows["Pain"][3]
    assert rows["Location"][3] == "derived from the level name"
    assert rows["Total"][1] == "15-18"
    rows = {r[0]: r for r in item_rows(_level(1, 1))}  # T12 is junctional (3): 1 is a clinician override
    assert "clinician" in rows["Location"][3] and rows["Pain"][2].startswith("occasional")


def test_reformat_places_an_index_point_where_the_labels_say() -> None:
    shape, spacing = (20, 30, 40), (1.5, 2.0, 2.5)
    ct = np.full(shape, -1000.0)
    seg = np.zeros(shape, np.uint8)
    point = np.array([7, 11, 23])
    ct[tuple(point)] = 2000.0
    seg[tuple(point)] = 19
    track = np.tile(point[:2].astype(float), (shape[2], 1))
    sag, cor = spine_reformats(ct, seg, np.zeros(shape, np.uint8), track, spacing, slab_mm=0.0)
    for plane, (x, y) in ((sag, sagittal_xy(point, shape, spacing)), (cor, coronal_xy(point, shape, spacing))):
        left, right, bottom, top = plane.extent
        col = int((x - left) / (right - left) * plane.seg.shape[1])
        row = int((top - y) / (top - bottom) * plane.seg.shape[0])
        assert plane.seg[row, col] == 19 and plane.grey[row, col] == 1.0
        assert plane.seg.sum() == 19


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="headless Chromium (Debian package chromium) not installed"
)
def test_report_renders_in_headless_chromium(sample_out: Path, tmp_path: Path) -> None:
    page = (sample_out / "report.html").read_text()
    probe = (
        "<script>window.addEventListener('load', () => { const imgs = [...document.images];"
        " document.body.setAttribute('data-images', imgs.length);"
        " document.body.setAttribute('data-broken', imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length);"
        " });</script></body>"
    )
    probed = tmp_path / "probe.html"
    probed.write_text(page.replace("</body>", probe))
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
    dom = subprocess.run(
        [*base, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=90
    )
    assert 'data-images="2"' in dom.stdout and 'data-broken="0"' in dom.stdout, shlex.join(base) + dom.stderr[-500:]
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,2400", (sample_out / "report.html").as_uri()],
        capture_output=True,
        timeout=90,
        check=True,
    )
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2400, 1200) and pixels.min() < 50 and pixels.std() > 20  # drawn, not blank
