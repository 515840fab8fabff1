"""Output files never clobber what their path really is (edgebench/files.py): a device node, a FIFO or a socket
is refused with one line and left as it was, a symlink stays a link with its target written, a replaced file
keeps its mode. Through the helper, and through the commands that write files (report --html/--plot/--write,
build-engines' manifest), as real processes on real special files."""

import os
import socket
import stat
import subprocess

import pytest
from test_plot import HAS_MATPLOTLIB, write_measure_dir

from edgebench.cli import edgebench_argv
from edgebench.errors import BadInput
from edgebench.files import move_into_place, open_append, write_atomic


@pytest.fixture()
def specials(tmp_path):
    """A FIFO, a listening Unix socket and (as root) a character device like /dev/full, under tmp_path."""
    made = {"fifo": tmp_path / "fifo.png"}  # suffixes a plot accepts: the kind of file is what is refused
    os.mkfifo(made["fifo"])
    sock = socket.socket(socket.AF_UNIX)
    made["socket"] = tmp_path / "sock.png"
    sock.bind(str(made["socket"]))
    if os.geteuid() == 0:
        made["device"] = tmp_path / "full.png"
        os.mknod(made["device"], stat.S_IFCHR | 0o666, os.makedev(1, 7))  # the numbers of /dev/full
    yield made
    sock.close()


def _kind(path):
    mode = os.lstat(path).st_mode
    return stat.S_IFMT(mode)


def test_special_files_are_refused_and_left_alone(specials, tmp_path):
    for name, path in specials.items():
        before = _kind(path)
        with pytest.raises(BadInput, match="not a regular file") as info:
            write_atomic(path, "x", what="--html")
        assert "\n" not in str(info.value) and "--html" in str(info.value), name
        assert _kind(path) == before, name
        with pytest.raises(BadInput, match="not a regular file"):
            open_append(path)
        made = tmp_path / f"made-{name}"
        made.write_text("y")
        with pytest.raises(BadInput, match="not a regular file"):
            move_into_place(made, path)
        assert _kind(path) == before and made.exists()
    with pytest.raises(BadInput, match="a directory"):
        write_atomic(tmp_path, "x")


def test_a_symlink_stays_a_link_and_its_target_is_written(specials, tmp_path):
    target = tmp_path / "real.html"
    target.write_text("old")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    assert write_atomic(link, "new") == target
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "dangling.html"
    dangling.symlink_to(tmp_path / "not-yet.html")
    write_atomic(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "not-yet.html").read_text() == "made"
    to_fifo = tmp_path / "to-fifo"
    to_fifo.symlink_to(specials["fifo"])
    with pytest.raises(BadInput, match="FIFO"):
        write_atomic(to_fifo, "x")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(BadInput, match="symbolic link"):
        write_atomic(loop, "x")


def test_a_replaced_file_keeps_its_mode_and_nothing_is_left_behind(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("old")
    path.chmod(0o640)
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]  # no temporary file stays
    with pytest.raises(BadInput, match="cannot write .*missing"):
        write_atomic(tmp_path / "missing" / "x.csv", "x")


def _edgebench(*args):
    # a real process with a bound: before the fix a plot into a FIFO blocked for ever, waiting for a reader
    return subprocess.run([*edgebench_argv(), *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib not installed: pip install 'edgebench[plot]'")
@pytest.mark.slow
def test_report_outputs_refuse_special_files_and_follow_links(specials, tmp_path):
    d = write_measure_dir(tmp_path / "m").path
    for path in specials.values():
        before = _kind(path)
        for option in (["--html", path], ["--plot", path, "--x", "latency", "--y", "gross_j"]):
            proc = _edgebench("report", d, *option)
            assert proc.returncode == 2, (option, path, proc.stderr)
            assert "not a regular file" in proc.stderr and "Traceback" not in proc.stderr
            assert [line for line in proc.stderr.splitlines() if "error:" in line] == proc.stderr.splitlines()[-1:]
            assert _kind(path) == before, (option, path)
    # report --write rewrites table.* through a link: the link stays, its target gets the table
    elsewhere = tmp_path / "elsewhere.csv"
    (d / "table.csv").rename(elsewhere)
    (d / "table.csv").symlink_to(elsewhere)
    page = tmp_path / "page.html"
    page.symlink_to(tmp_path / "page-target.html")
    proc = _edgebench("report", d, "--write", "--html", page)
    assert proc.returncode == 0, proc.stderr
    assert (d / "table.csv").is_symlink() and elsewhere.read_text().startswith("rank,")
    assert page.is_symlink() and (tmp_path / "page-target.html").read_text().startswith("<!DOCTYPE html>")


def test_the_engine_manifest_through_a_link(tmp_path):
    from edgebench.engines.manifest import Manifest

    out = tmp_path / "engines"
    out.mkdir()
    shared = tmp_path / "shared-manifest.json"
    shared.write_text('{"schema": 1, "engines": []}\n')
    (out / "manifest.json").symlink_to(shared)
    manifest = Manifest.load(out)
    manifest.save()
    assert (out / "manifest.json").is_symlink() and '"engines": []' in shared.read_text()


def test_the_meter_store_and_runs_jsonl_refuse_special_files_and_write_through_links(tmp_path):
    """Issue 18 item 2, the stores the logger and measure append to: a FIFO is one line, never replaced; a
    symlink's target is written and the link stays."""
    import os

    from edgebench.host.store import open_store
    from edgebench.records import MeterReading, RunRecord, append_jsonl, read_run_records

    fifo = tmp_path / "meter.sqlite"
    os.mkfifo(fifo)
    with pytest.raises(BadInput, match="FIFO"):
        open_store(fifo)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    runs_fifo = tmp_path / "runs.jsonl"
    os.mkfifo(runs_fifo)
    record = RunRecord(engine="e_1_8_8_fp32", backend="x", clock="host:realtime", window_start_ns=1, window_end_ns=2,
                       iterations=1, batch=1, latencies_ns=(1,))
    with pytest.raises(BadInput, match="FIFO"):
        append_jsonl(runs_fifo, [record])
    target = tmp_path / "real.sqlite"
    link = tmp_path / "link.sqlite"
    link.symlink_to(target)
    with open_store(link) as store:
        store.add(MeterReading(t_ns=10, power_w=5.0, meter="m"))
    assert link.is_symlink() and target.is_file() and target.read_bytes().startswith(b"SQLite format 3")
    jsonl_target = tmp_path / "real.jsonl"
    jsonl_link = tmp_path / "link.jsonl"
    jsonl_link.symlink_to(jsonl_target)
    append_jsonl(jsonl_link, [record])
    assert jsonl_link.is_symlink() and read_run_records(jsonl_target) == [record]
