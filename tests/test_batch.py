"""`sins batch` (issue #6): many cases, resumable, fault-isolated, parallel, on a Dask cluster.

Three small phantoms (3 mm, the bundled sample specs, scored from their label maps so no network is
needed) and bad inputs (truncated NIfTI, MR-like intensities, a 2D image, a folder without CT, a
label map without vertebrae) form one manifest. One uninterrupted `--workers 1` run is the
reference; a killed-and-resumed run, a two-process run and a Dask LocalCluster run must give the
same per-case `sins.json` byte for byte once the timings are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from io_fixtures import axial_positions, ct_array, truncate, write_dicom_series, write_nifti

from pipeline.batch import CaseTask, discover_cases, read_manifest, select_part
from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.phantom import generate, write_case
from pipeline.phantom.samples import SAMPLE_SPECS

GOOD = tuple(s.case_id for s in SAMPLE_SPECS)
#: Bad rows: case id -> (path under the data folder, what its error says).
BAD = {
    "truncated": ("bad/truncated.nii.gz", r"^truncated\.nii\.gz: cannot read it as a NIfTI file"),
    "mr_like": ("bad/mr_like.nii.gz", r"^mr_like\.nii\.gz: intensities do not look like Hounsfield units"),
    "slice2d": ("bad/slice2d.nii.gz", r"^slice2d\.nii\.gz: image is 2D"),
    "no_ct": ("bad/no_ct", r"^no_ct: no DICOM images found"),
    "no_spine": (f"ph/{GOOD[0]}/ct.nii.gz", r"no vertebra"),
}
CASE_FILES = {"sins.json", "levels.csv", "segmentation.nii.gz", "segmentation_labels.json", "report.html"}


def _row(case_id: str, ct: str, labels: str, lesions: str = "", pain: str = "") -> str:
    return f"{case_id},{ct},{labels},{lesions},{pain}"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Phantoms, bad inputs and manifests (relative paths: they resolve against the manifest's folder)."""
    root = tmp_path_factory.mktemp("batch_data")
    header = "case_id,path,labels,lesions,pain"
    good = []
    for spec in SAMPLE_SPECS:
        write_case(generate(replace(spec, spacing=(3.0, 3.0, 3.0))), root / "ph" / spec.case_id)
        d = f"ph/{spec.case_id}"
        good.append(_row(spec.case_id, f"{d}/ct.nii.gz", f"{d}/anatomy.nii.gz", f"{d}/lesions.nii.gz", spec.pain))
    bad = root / "bad"
    bad.mkdir()
    truncate(write_nifti(bad / "truncated.nii.gz", ct_array()))
    write_nifti(bad / "mr_like.nii.gz", ((ct_array().astype(float) + 1000) * 0.7).astype(np.int16))
    write_nifti(bad / "slice2d.nii.gz", np.resize(ct_array(), (24, 20)).astype(np.int16))
    (bad / "no_ct").mkdir()
    (bad / "no_ct" / "notes.txt").write_text("the study was never exported\n")
    ct = nib.load(root / "ph" / GOOD[0] / "ct.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(ct.shape, np.uint8), ct.affine), bad / "empty_labels.nii.gz")
    # a label map is given for the bad rows too (the CT fails first), so no network is needed
    labels = f"ph/{GOOD[0]}/anatomy.nii.gz"
    bad_rows = [
        _row(cid, path, "bad/empty_labels.nii.gz" if cid == "no_spine" else labels) for cid, (path, _) in BAD.items()
    ]
    (root / "all.csv").write_text("\n".join([header, *good, *bad_rows]) + "\n")
    (root / "good.csv").write_text("\n".join([header, *good]) + "\n")
    # the same phantoms under more ids: enough cases to stop a run halfway
    more = [r.replace(f"{s},", f"{s}_2,", 1) for r, s in zip(good, GOOD, strict=True)]
    (root / "many.csv").write_text("\n".join([header, *good, *more]) + "\n")
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main(["batch", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    import csv

    with open(path, newline="") as fh:
        return {row["case_id"]: row for row in csv.DictReader(fh)}


def without_timings(path: Path) -> bytes:
    """sins.json as written, less its timings block (the only part that may differ between runs)."""
    text = path.read_text()
    stripped, n = re.subn(r',\n  "timings_s": \{[^}]*\}', "", text)
    assert n == 1, text
    return stripped.encode()


def case_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def reference(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted `--workers 1` run over every case."""
    out = tmp_path_factory.mktemp("reference") / "run"
    code = main(["batch", "--manifest", str(data / "all.csv"), "--out", str(out), "--quiet"])
    assert code == 4
    return out


def same_cases(out: Path, reference: Path, ids: tuple[str, ...] = GOOD) -> None:
    for case_id in ids:
        assert without_timings(out / case_id / "sins.json") == without_timings(reference / case_id / "sins.json")
        assert (out / case_id / "levels.csv").read_bytes() == (reference / case_id / "levels.csv").read_bytes()


def same_summaries(out: Path, reference: Path) -> None:
    assert (out / "levels.csv").read_bytes() == (reference / "levels.csv").read_bytes()
    a, b = read_rows(out / "cases.csv"), read_rows(reference / "cases.csv")
    for row in (*a.values(), *b.values()):
        row.pop("seconds")
    assert a == b


# ---------------------------------------------------------------- (a) good and bad cases, one batch
def test_good_cases_scored_bad_cases_reported(data: Path, reference: Path) -> None:
    rows = read_rows(reference / "cases.csv")
    assert sorted(rows) == sorted([*GOOD, *BAD])
    for case_id in GOOD:
        truth = json.loads((data / "ph" / case_id / "truth.json").read_text())["summary"]
        row = rows[case_id]
        assert row["status"] == "ok" and row["error"] == ""
        assert int(row["max_total"]) == truth["max_total"]
        assert row["category"] == truth["category"]
        assert row["lesion_levels"].split(";") == truth["lesion_levels"]
        assert float(row["seconds"]) > 0
        assert {p.name for p in (reference / case_id).iterdir()} >= CASE_FILES
        doc = json.loads((reference / case_id / "sins.json").read_text())
        assert doc["case_id"] == case_id and doc["summary"] == truth
    for case_id, (_, reason) in BAD.items():
        row = rows[case_id]
        assert row["status"] == "error" and row["max_total"] == "" and "\n" not in row["error"]
        assert re.search(reason, row["error"]), row["error"]
        assert not (reference / case_id).exists()
    assert [p.name for p in case_dirs(reference)] == sorted(GOOD)
    assert not (reference / ".sins-staging").exists()
    # levels.csv across cases: every level of every good case, in case order, one header
    parts = [(reference / c / "levels.csv").read_text().splitlines() for c in sorted(GOOD)]
    assert (reference / "levels.csv").read_text().splitlines() == [
        parts[0][0],
        *(line for p in parts for line in p[1:]),
    ]
    info = json.loads((reference / "run.json").read_text())
    assert info["status"] == "finished" and info["started"] <= info["finished"]
    assert info["counts"] == {
        "cases": 8, "cases_all_parts": 8, "ok": 3, "error": 5, "computed": 8, "reused": 0, "not_run": 0,
    }  # fmt: skip
    assert info["software"]["model_sha256"] is None and len(info["config_sha256"]) == 64
    assert info["workers"][0]["cases"] == 8 and info["workers"][0]["peak_rss_mb"] > 50


def test_exit_code_and_listing(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path) -> None:
    code, out, err = run(capsys, "--manifest", data / "all.csv", "--out", tmp_path / "run", "--quiet")
    assert code == 4
    assert out.splitlines()[0] == f"8 cases: 3 ok (0 done by an earlier run), 5 failed; written to {tmp_path / 'run'}"
    assert re.search(r"^  mr_like: mr_like\.nii\.gz: intensities", out, re.M)
    assert re.search(r"^\[\d/8\] truncated: error: truncated\.nii\.gz", err, re.M)  # --quiet: log lines
    # a rerun finds the good cases done and tries the failed ones again
    code, out, _ = run(capsys, "--manifest", data / "all.csv", "--out", tmp_path / "run", "--quiet")
    assert code == 4 and "3 ok (3 done by an earlier run), 5 failed" in out
    code, out, err = run(capsys, "--manifest", data / "good.csv", "--out", tmp_path / "run")
    assert code == 0 and "3 cases: 3 ok (3 done by an earlier run), 0 failed" in out
    assert "sins batch: 100%" in err and "failed=0" in err  # the progress bar


def test_unexpected_error_is_a_row(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.batch.worker as worker

    real = worker.analyze_case

    def flaky(req, inputs=None, model=None):
        if req.case_id == GOOD[1]:
            raise RuntimeError("disk\nfull")
        return real(req, inputs, model)

    monkeypatch.setattr(worker, "analyze_case", flaky)
    code, _, _ = run(capsys, "--manifest", data / "good.csv", "--out", tmp_path / "run", "--quiet")
    assert code == 4
    rows = read_rows(tmp_path / "run" / "cases.csv")
    assert rows[GOOD[1]]["error"] == "RuntimeError: disk full"
    assert [r["status"] for c, r in rows.items() if c != GOOD[1]] == ["ok", "ok"]
    assert not (tmp_path / "run" / GOOD[1]).exists()


# ---------------------------------------------------------------- (b) kill midway, resume
WAIT_AFTER_EACH_CASE = """
import sys, time
import pipeline.cli as cli
reporter = cli._batch_reporter
def waiting_reporter(quiet):
    report, close = reporter(quiet)
    def report_then_wait(event):
        report(event)
        if event.record is not None:
            time.sleep(60)  # the test's SIGTERM interrupts this, once the first case is reported
    return report_then_wait, close
cli._batch_reporter = waiting_reporter
sys.exit(cli.main(sys.argv[1:]))
"""


def test_killed_run_resumes_where_it_stopped(
    capsys: pytest.CaptureFixture[str], data: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    # The real CLI, made to wait after each case it reports, so that the kill always lands midway
    # (a free-running batch of small phantoms can finish between two polls on a busy machine).
    cmd = [sys.executable, "-c", WAIT_AFTER_EACH_CASE, "batch", "--manifest", str(data / "many.csv"), "--out", str(out)]
    proc = subprocess.Popen([*cmd, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, proc.kill)  # a hung batch fails the test instead of stalling it
    watchdog.start()
    try:
        lines: list[str] = []
        while not (lines and lines[-1].startswith("[1/6] ")):  # the first case reported: "[1/6] CASE: ok"
            lines.append(proc.stderr.readline())
            assert lines[-1], "".join(lines)  # the batch ended before reporting a case
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
        stderr = "".join(lines) + rest
    finally:
        watchdog.cancel()
        proc.kill()
    assert proc.returncode == 143, stderr
    assert stderr.splitlines()[-1] == "sins: terminated" and "Traceback" not in stderr
    # what is there is complete; nothing half-written looks done
    done = case_dirs(out)
    assert len(done) == 1, "the run was not stopped after its first case"
    for case_dir in done:
        assert {p.name for p in case_dir.iterdir()} >= CASE_FILES
    assert not [p for p in out.rglob("sins.json") if p.parent.parent == out and p.parent not in done]
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted" and info["counts"]["ok"] == len(done)
    before = {p.name: (p / "sins.json").stat().st_mtime_ns for p in done}

    code, _, _ = run(capsys, "--manifest", data / "many.csv", "--out", out, "--quiet")
    assert code == 0
    counts = json.loads((out / "run.json").read_text())["counts"]
    assert counts["reused"] == len(done) and counts["computed"] == 6 - len(done)
    assert {p.name: (p / "sins.json").stat().st_mtime_ns for p in done} == before  # not recomputed
    assert len(case_dirs(out)) == 6 and not (out / ".sins-staging").exists()
    same_cases(out, reference)
    for case_id in GOOD:  # the copies under other ids differ only in their id
        copy = without_timings(out / f"{case_id}_2" / "sins.json").decode()
        assert copy.replace(f'"{case_id}_2"', f'"{case_id}"') == without_timings(out / case_id / "sins.json").decode()


def test_an_interrupt_just_after_a_commit_still_counts_the_case(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C between a case's commit (its folder renamed into place) and its row: run.json and
    cases.csv count the folder that is there."""
    import pipeline.batch.run as batch_run

    real_commit = batch_run.commit

    def commit_then_interrupt(out: Path, case_id: str):
        real_commit(out, case_id)
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_run, "commit", commit_then_interrupt)
    out = tmp_path / "run"
    code, _, err = run(capsys, "--manifest", data / "good.csv", "--out", out, "--quiet")
    assert code == 130 and err.splitlines()[-1] == "sins: interrupted"
    done = case_dirs(out)
    assert len(done) == 1 and (done[0] / "sins.json").is_file()
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted" and info["counts"]["ok"] == 1 and info["counts"]["computed"] == 1
    rows = read_rows(out / "cases.csv")
    assert [(c, r["status"]) for c, r in rows.items()] == [(done[0].name, "ok")]


def test_leftovers_of_a_crash_are_redone(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    half = out / GOOD[0]  # a case folder without sins.json (e.g. copied by hand, or an older version)
    half.mkdir(parents=True)
    (half / "levels.csv").write_text("partial")
    staged = out / ".sins-staging" / "new" / GOOD[1]  # killed while writing, or before the rename
    staged.mkdir(parents=True)
    (staged / "sins.json").write_text("{")
    broken = out / GOOD[2]  # a sins.json that does not parse
    broken.mkdir()
    (broken / "sins.json").write_text('{"case_id": ')
    code, _, _ = run(capsys, "--manifest", data / "good.csv", "--out", out, "--quiet")
    assert code == 0
    assert json.loads((out / "run.json").read_text())["counts"]["computed"] == 3
    for case_id in GOOD:
        assert json.loads((out / case_id / "sins.json").read_text())["case_id"] == case_id
    assert (half / "levels.csv").read_text() != "partial"
    assert not (out / ".sins-staging").exists()


# ---------------------------------------------------------------- (c) parallel and distributed give the same
def test_two_workers_match_one(capsys: pytest.CaptureFixture[str], data: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, _ = run(capsys, "--manifest", data / "all.csv", "--out", out, "--workers", 2, "--quiet")
    assert code == 4
    same_cases(out, reference)
    same_summaries(out, reference)
    info = json.loads((out / "run.json").read_text())
    assert info["backend"] == {"kind": "local", "workers": 2}
    assert len(info["workers"]) == 2 and sum(w["cases"] for w in info["workers"]) == 8
    assert all(w["worker"].split(":")[-1] != str(os.getpid()) for w in info["workers"])  # other processes


def test_a_dead_worker_costs_one_case(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "run"
    killed: list[int] = []

    def kill_a_worker() -> None:  # once the first case is done, as if the kernel's OOM killer struck
        deadline = time.monotonic() + 60
        while not list(out.glob("*/sins.json")) and time.monotonic() < deadline:
            time.sleep(0.02)
        for child in psutil.Process().children():
            if "spawn_main" in " ".join(child.cmdline()) and not killed:
                killed.append(child.pid)
                child.kill()

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    code, stdout, _ = run(capsys, "--manifest", data / "many.csv", "--out", out, "--workers", 2, "--quiet")
    killer.join()
    assert killed and code == 4, stdout
    rows = read_rows(out / "cases.csv")
    failed = {c: r["error"] for c, r in rows.items() if r["status"] != "ok"}
    assert len(rows) == 6 and len(failed) == 1, rows
    assert re.fullmatch(r"worker process died \(exit code -9\) while processing this case", *failed.values())
    assert len(case_dirs(out)) == 5 and not (out / ".sins-staging").exists()


def test_a_worker_killed_at_start_up_stops_nothing(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path
) -> None:
    """A worker killed early (starting, or waiting for or reading a case: with a queue shared by the
    workers it could take the queue's lock with it and stop the others for good) costs at most the
    case it had taken; the others are scored."""
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "run"
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for child in psutil.Process().children():
                with contextlib.suppress(psutil.Error):
                    if "spawn_main" in " ".join(child.cmdline()):
                        time.sleep(0.3)  # started: importing, or waiting for its first case
                        child.kill()
                        killed.append(child.pid)
                        return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    code, stdout, _ = run(capsys, "--manifest", data / "many.csv", "--out", out, "--workers", 2, "--quiet")
    killer.join()
    rows = read_rows(out / "cases.csv")
    failed = [r["error"] for r in rows.values() if r["status"] != "ok"]
    assert killed and len(rows) == 6 and code == (4 if failed else 0), stdout
    assert len(failed) <= 1 and all(e.startswith("worker process died") for e in failed), rows  # at most its case


def test_dask_cluster_matches_local(
    capsys: pytest.CaptureFixture[str], data: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    distributed = pytest.importorskip("distributed")
    kw = dict(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", dashboard_address=None)
    with distributed.LocalCluster(protocol="tcp", **kw) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        out = tmp_path / "run"
        code, stdout, _ = run(capsys, "--manifest", data / "all.csv", "--out", out, "--scheduler", address, "--quiet")
        assert code == 4, stdout
        same_cases(out, reference)
        same_summaries(out, reference)
        assert json.loads((out / "run.json").read_text())["backend"]["kind"] == "dask"

        # an unexpected error is retried, then becomes the case's error row
        import pipeline.batch.worker as worker

        calls = []
        real = worker.analyze_case

        def flaky(req, inputs=None, model=None):
            if req.case_id == GOOD[0]:
                calls.append(req.case_id)
                raise MemoryError("out of memory")
            return real(req, inputs, model)

        monkeypatch.setattr(worker, "analyze_case", flaky)
        out2 = tmp_path / "run2"
        args = ("--manifest", data / "good.csv", "--out", out2, "--scheduler", address, "--retries", 1, "--quiet")
        code, _, _ = run(capsys, *args)
        assert code == 4 and len(calls) == 2
        assert read_rows(out2 / "cases.csv")[GOOD[0]]["error"] == "MemoryError: out of memory"
        same_cases(out2, reference, GOOD[1:])


def test_unreachable_scheduler_is_one_line(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    import pipeline.batch.dask as dask_backend

    dask_backend.CONNECT_TIMEOUT_S = 1  # restored below
    try:
        code, _, err = run(
            capsys, "--manifest", data / "good.csv", "--out", tmp_path / "o", "--scheduler", "tcp://127.0.0.1:9"
        )
    finally:
        dask_backend.CONNECT_TIMEOUT_S = 30
    assert code == 2 and re.fullmatch(r"sins: error: --scheduler tcp://127\.0\.0\.1:9: cannot reach .*\n", err), err
    assert not (tmp_path / "o").exists()


def test_scheduler_without_dask_is_one_line(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    code, _, err = run(capsys, "--manifest", data / "good.csv", "--out", tmp_path / "o", "--scheduler", "tcp://h:1")
    assert code == 2 and err.count("\n") == 1 and 'pip install "opensins[distributed]"' in err, err
    assert not (tmp_path / "o").exists()


def test_dask_and_torch_load_only_when_needed() -> None:
    code = "import sys, pipeline.cli, pipeline.batch; print(sorted({'distributed', 'torch'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


# ---------------------------------------------------------------- (d) sharding
def test_parts_cover_every_case_once() -> None:
    tasks = [CaseTask(f"case{i:03d}", f"/x/{i}.nii.gz") for i in np.random.default_rng(0).permutation(50)]
    parts = [select_part(tasks, 3, i) for i in range(3)]
    ids = [t.case_id for p in parts for t in p]
    assert sorted(ids) == sorted(t.case_id for t in tasks) and len(set(ids)) == 50
    assert [len(p) for p in parts] == [17, 17, 16]
    assert parts == [select_part(list(reversed(tasks)), 3, i) for i in range(3)]  # input order does not matter
    for bad in ((3, None), (None, 0), (0, 0), (3, 3), (3, -1)):
        with pytest.raises(InputError):
            select_part(tasks, *bad)


def test_parts_then_gather(capsys: pytest.CaptureFixture[str], data: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    seen: list[str] = []
    for part in range(3):
        args = ("--manifest", data / "all.csv", "--out", out, "--num-parts", 3, "--part-id", part, "--quiet")
        run(capsys, *args)
        seen += read_rows(out / f"cases.part-{part}-of-3.csv")
        info = json.loads((out / f"run.part-{part}-of-3.json").read_text())
        assert info["part"] == {"num_parts": 3, "part_id": part} and info["counts"]["cases_all_parts"] == 8
    assert sorted(seen) == sorted([*GOOD, *BAD])
    assert not (out / "cases.csv").exists()
    code, _, _ = run(capsys, "--manifest", data / "all.csv", "--out", out, "--quiet")  # gather: nothing recomputed
    assert code == 4
    assert json.loads((out / "run.json").read_text())["counts"]["reused"] == 3
    same_summaries(out, reference)
    same_cases(out, reference)


# ---------------------------------------------------------------- (e) duplicates, overwrite, usage
def test_duplicate_ids_fail_before_anything(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "dup.csv"
    lines = (data / "good.csv").read_text().splitlines()
    manifest.write_text("\n".join([*lines, lines[1]]) + "\n")
    code, out, err = run(capsys, "--manifest", manifest, "--out", tmp_path / "o")
    assert code == 2 and out == ""
    assert re.fullmatch(rf"sins: error: duplicate case id '{GOOD[0]}': dup\.csv row 2 and dup\.csv row 5 .*\n", err)
    assert not (tmp_path / "o").exists()
    # two folders each holding ct.nii.gz: both would be case "ct"
    for name in GOOD[:2]:
        (tmp_path / name).mkdir()
        shutil.copy(data / "ph" / name / "ct.nii.gz", tmp_path / name / "ct.nii.gz")
    code, _, err = run(capsys, tmp_path / GOOD[0], tmp_path / GOOD[1], "--out", tmp_path / "o")
    assert code == 2 and "duplicate case id 'ct'" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_overwrite_recomputes(capsys: pytest.CaptureFixture[str], data: Path, reference: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "one.csv"
    manifest.write_text("\n".join((data / "good.csv").read_text().splitlines()[:2]) + "\n")
    manifest.write_text(manifest.read_text().replace("ph/", f"{data}/ph/"))  # absolute paths work too
    out = tmp_path / "run"
    assert run(capsys, "--manifest", manifest, "--out", out, "--quiet")[0] == 0
    first = (out / GOOD[0] / "sins.json").stat().st_mtime_ns
    assert run(capsys, "--manifest", manifest, "--out", out, "--quiet")[0] == 0
    assert json.loads((out / "run.json").read_text())["counts"]["reused"] == 1
    assert (out / GOOD[0] / "sins.json").stat().st_mtime_ns == first
    assert run(capsys, "--manifest", manifest, "--out", out, "--quiet", "--overwrite")[0] == 0
    assert json.loads((out / "run.json").read_text())["counts"] == {
        "cases": 1, "cases_all_parts": 1, "ok": 1, "error": 0, "computed": 1, "reused": 0, "not_run": 0,
    }  # fmt: skip
    assert (out / GOOD[0] / "sins.json").stat().st_mtime_ns != first
    same_cases(out, reference, GOOD[:1])


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--out", "o"], "give either inputs"),
        (["x.nii.gz", "--manifest", "m.csv", "--out", "o"], "give either inputs"),
        (["x.nii.gz", "--out", "o", "--workers", "0"], "--workers must be at least 1"),
        (["x.nii.gz", "--out", "o", "--workers", "2", "--scheduler", "tcp://h:1"], "--workers is for this machine"),
        (["x.nii.gz", "--out", "o", "--gpu"], "go with --scheduler"),
        (["x.nii.gz", "--out", "o", "--num-parts", "2"], "--num-parts and --part-id go together"),
        (["x.nii.gz", "--out", "o", "--num-parts", "2", "--part-id", "2"], "--part-id must be from 0 to 1"),
        (["nothing/*.nii.gz", "--out", "o"], "no file or folder matches"),
        (["--manifest", "missing.csv", "--out", "o"], "manifest not found"),
    ],
)
def test_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], match: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("sins: error: "), err
    assert re.search(match, err), err
    assert not (tmp_path / "o").exists()


def test_inputs_without_a_model_stop_before_anything(
    capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path
) -> None:
    code, _, err = run(capsys, data / "bad", "--out", tmp_path / "o", "--model", tmp_path / "nowhere")
    assert code == 2 and "no model at" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- finding cases
def test_discover_cases(data: Path, tmp_path: Path) -> None:
    series = tmp_path / "study_7"  # a DICOM series folder (files in a sub-folder): one case
    write_dicom_series(series / "series1", ct_array((24, 20, 6)).astype(float), axial_positions(6))
    found = discover_cases([data / "bad", series, str(data / "ph" / "*" / "ct.nii.gz")])
    ids = [t.case_id for t in found]
    # a folder of images: one case per image; the folder without CT is not among them (it is not an image)
    assert ids[:4] == ["empty_labels", "mr_like", "slice2d", "truncated"]
    assert ids[4] == "study_7" and Path(found[4].ct) == series.absolute()
    assert ids[5:] == ["ct", "ct", "ct"]  # the glob's matches (named after the file: use a manifest to name them)
    assert discover_cases([data / "bad" / "no_ct"])[0].case_id == "no_ct"  # a folder without images: one case
    assert all(Path(t.ct).is_absolute() for t in found)


def test_manifest_columns(data: Path, tmp_path: Path) -> None:
    sub = tmp_path / "lists"
    sub.mkdir()
    manifest = sub / "m.csv"
    ph = data / "ph" / GOOD[0]
    manifest.write_text(
        "Case_ID,path,labels,label_format,pain,location,lowest_level,level_offset\n"
        f",{ph}/ct.nii.gz,../seg.nii.gz,verse,Mechanical,mobile,L5,\n"
        f"b,rel/ct.nii.gz,,,,,,-1\n"
    )
    a, b = read_manifest(manifest)
    assert a.case_id == "ct" and a.label_format == "verse" and a.labels == str(tmp_path / "seg.nii.gz")
    assert (
        a.clinical is not None and a.clinical.pain == {None: "mechanical"} and a.clinical.location == {None: "mobile"}
    )
    assert a.clinical.override is not None and a.clinical.override.lowest_level == "L5"
    assert b.ct == str(sub / "rel" / "ct.nii.gz") and b.labels is None and b.needs_model
    assert b.clinical is not None and b.clinical.override is not None and b.clinical.override.offset == -1


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("case_id,path,notes\na,x.nii.gz,hi\n", r"m\.csv row 1: unknown column 'notes'"),
        ("case_id,labels\na,x.nii.gz\n", "header lacks column path"),
        ("case_id,path\n", "no case rows"),
        ("case_id,path,lesions\na,x.nii.gz,l.nii.gz\n", r"m\.csv row 2: lesions given without labels"),
        ("case_id,path,pain\na,x.nii.gz,severe\n", r"m\.csv row 2: unknown pain 'severe'"),
        ("case_id,path,label_format\na,x.nii.gz,nnunet\n", r"row 2: unknown label_format 'nnunet'"),
        ("case_id,path\na/b,x.nii.gz\n", r"row 2: case id 'a/b' is not usable as a folder name"),
        ("case_id,path\ncases.csv,x.nii.gz\n", r"case id 'cases\.csv' is not usable"),
        ("case_id,path\na,\n", r"row 2: path is empty"),
        ("case_id,path,lowest_level,level_offset\na,x.nii.gz,L4,1\n", "either a lowest level"),
    ],
)
def test_manifest_errors(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(InputError, match=match):
        read_manifest(tmp_path / "m.csv")


def test_manifest_and_clinical_csv(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    d = data / "ph" / GOOD[2]  # T12 18 with mechanical pain; here pain comes from the clinician CSV
    manifest.write_text(f"case_id,path,labels,lesions\nx,{d}/ct.nii.gz,{d}/anatomy.nii.gz,{d}/lesions.nii.gz\n")
    clinical = tmp_path / "clinical.csv"
    clinical.write_text("case_id,level,pain\nx,,none\n")
    out = tmp_path / "run"
    assert run(capsys, "--manifest", manifest, "--clinical", clinical, "--out", out, "--quiet")[0] == 0
    assert read_rows(out / "cases.csv")["x"]["max_total"] == "15"  # 18 less the 3 points of mechanical pain
    # the manifest's pain must agree with the clinician CSV's
    manifest.write_text(manifest.read_text().replace("lesions\n", "lesions,pain\n").rstrip() + ",mechanical\n")
    code, _, err = run(capsys, "--manifest", manifest, "--clinical", clinical, "--out", tmp_path / "o2")
    assert code == 2 and "m.csv row 2: pain 'mechanical' conflicts with 'none' in the clinical CSV" in err
    # no row for the case: pain unknown, said in the case's notes as `sins analyze` says it
    clinical.write_text("case_id,level,pain\nother,,none\n")
    manifest.write_text(f"case_id,path,labels,lesions\nx,{d}/ct.nii.gz,{d}/anatomy.nii.gz,{d}/lesions.nii.gz\n")
    assert run(capsys, "--manifest", manifest, "--clinical", clinical, "--out", tmp_path / "o3", "--quiet")[0] == 0
    doc = json.loads((tmp_path / "o3" / "x" / "sins.json").read_text())
    assert doc["summary"]["max_total"] is None and "clinical CSV has no row for case 'x'" in doc["notes"][0]
