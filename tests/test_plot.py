"""`edgebench report --plot`: a scatter of two table columns (matplotlib, the optional `plot` extra)."""

import importlib.util

import pytest

from edgebench.errors import BadInput, MissingDependency
from edgebench.host.plot import plot_result

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib not installed: pip install 'edgebench[plot]'")
@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_plot_writes_the_format_its_suffix_names(paired_result, tmp_path, suffix, magic):
    path = plot_result(paired_result, tmp_path / f"energy{suffix}", x="latency", y="net_j")
    data = path.read_bytes()
    assert data.startswith(magic) and len(data) > 1000
    if suffix == ".svg":  # the three valid engines are labelled, the invalid one is not drawn
        text = data.decode()
        assert "resnet18_1_224_224_fp32" in text and "mbv2_4_120_392_fp16" in text
        assert "broken_1_8_8_fp32" not in text


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib not installed: pip install 'edgebench[plot]'")
def test_plot_refuses_columns_it_cannot_draw(paired_result, tmp_path):
    with pytest.raises(BadInput, match="--y 'engine' cannot be plotted"):
        plot_result(paired_result, tmp_path / "p.png", x="latency", y="engine")
    with pytest.raises(BadInput, match="no engine has both gflops and net_j"):
        plot_result(paired_result, tmp_path / "p.png", x="gflops", y="net_j")  # these records carry no model facts


@pytest.mark.skipif(HAS_MATPLOTLIB, reason="matplotlib is installed: the missing-dependency message cannot show")
def test_plot_without_matplotlib_says_how_to_install_it(paired_result, tmp_path):
    with pytest.raises(MissingDependency, match=r"pip install 'edgebench\[plot\]'"):
        plot_result(paired_result, tmp_path / "p.png", x="latency", y="net_j")
