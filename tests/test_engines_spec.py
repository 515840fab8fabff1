import pytest

from edgebench.engines.spec import EngineSpec, parse_resolution
from edgebench.engines.sweep import DEFAULT_SWEEP, Sweep, load_sweep
from edgebench.errors import BadInput


@pytest.mark.parametrize(
    "spec, name",
    [
        (EngineSpec("resnet18", 1, 224, 224, "fp32"), "resnet18_1_224_224_fp32"),
        (EngineSpec("mobilenet_v3_small", 2, 120, 392, "fp16"), "mobilenet_v3_small_2_120_392_fp16"),
        (EngineSpec("squeezenet1_1", 8, 240, 784, "fp16", "seq_4"), "squeezenet1_1_8_240_784_fp16_seq_4"),
        (EngineSpec("sp_resnet18", 2, 120, 392, "fp16", "seq_4"), "sp_resnet18_2_120_392_fp16_seq_4"),
        (EngineSpec("my_net_v2", 16, 32, 64, "fp32", "b"), "my_net_v2_16_32_64_fp32_b"),
    ],
)
def test_name_round_trips(spec, name):
    assert spec.name == name
    assert EngineSpec.parse(name) == spec


def test_parse_reads_upper_case_precision_like_the_seed_project():
    spec = EngineSpec.parse("sp_resnet18_2_120_392_FP16_seq_4")
    assert (spec.backbone, spec.batch, spec.height, spec.width, spec.precision, spec.extra) == (
        "sp_resnet18", 2, 120, 392, "fp16", "seq_4",
    )


@pytest.mark.parametrize("name", ["resnet18", "resnet18_1_224_fp32", "resnet18_1_224_224_fp64", "_1_2_3_fp32", ""])
def test_parse_rejects_non_names(name):
    with pytest.raises(BadInput, match="not an engine name"):
        EngineSpec.parse(name)


def test_parse_names_a_precision_the_builder_does_not_make():
    with pytest.raises(BadInput, match="unknown precision 'int8'"):
        EngineSpec.parse("resnet18_1_224_224_int8")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch=0), "batch must be a positive integer"),
        (dict(height=0), "height must be a positive integer"),
        (dict(precision="int8"), "unknown precision 'int8'"),
        (dict(backbone="res net"), "not usable in an engine name"),
        (dict(backbone="net_1_2_3_fp32"), "ambiguous"),
    ],
)
def test_spec_validation(kwargs, message):
    fields = dict(backbone="resnet18", batch=1, height=224, width=224, precision="fp32")
    fields.update(kwargs)
    with pytest.raises(BadInput, match=message):
        EngineSpec(**fields)


def test_check_backbone_names_known_backbones_and_minimum_sizes():
    with pytest.raises(BadInput, match="unknown backbone 'resnet19'.*mobilenet_v2.*resnet18"):
        EngineSpec("resnet19", 1, 224, 224, "fp32").check_backbone()
    with pytest.raises(BadInput, match="too small for squeezenet1_1.*17x17"):
        EngineSpec("squeezenet1_1", 1, 16, 224, "fp32").check_backbone()
    EngineSpec("squeezenet1_1", 1, 17, 17, "fp32").check_backbone()
    EngineSpec("resnet18", 1, 1, 1, "fp32").check_backbone()  # padded convolutions and pools: any side works
    with pytest.raises(BadInput, match="multiples of 8"):
        EngineSpec("superpoint", 1, 120, 390, "fp32").check_backbone()
    EngineSpec("superpoint", 1, 120, 392, "fp32").check_backbone()
    EngineSpec("mine", 1, 5, 5, "fp32").check_backbone(user_models={"mine"})  # a user model's limits live in its graph


def test_parse_resolution():
    assert parse_resolution("120x392") == (120, 392)
    assert parse_resolution(" 64X48 ") == (64, 48)
    for bad in ("0x5", "224", "axb", "-1x3"):
        with pytest.raises(BadInput, match="resolution"):
            parse_resolution(bad)


def test_default_sweep_is_four_backbones_two_precisions():
    names = [spec.name for spec in DEFAULT_SWEEP.specs()]
    assert len(names) == len(DEFAULT_SWEEP) == 8
    assert names[:2] == ["resnet18_1_224_224_fp32", "resnet18_1_224_224_fp16"]
    assert {EngineSpec.parse(name).backbone for name in names} == {
        "resnet18", "mobilenet_v2", "squeezenet1_1", "mobilenet_v3_small",
    }


def test_sweep_expands_the_grid_with_user_models(tmp_path):
    sweep = Sweep(["resnet18"], [1, 2], ["64x64", (32, 48)], ["fp32"], models={"mine": tmp_path / "mine.onnx"})
    assert len(sweep.specs()) == 2 * 2 * 2
    assert sweep.specs()[-1].name == "mine_2_32_48_fp32"
    with pytest.raises(BadInput, match="unknown precision"):
        Sweep(["resnet18"], precisions=["int8"])
    with pytest.raises(BadInput, match="no backbone"):
        Sweep([])


def test_load_sweep_toml(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(
        'backbones = ["mobilenet_v3_small"]\nbatches = [1, 4]\nresolutions = ["120x392"]\n'
        'precisions = ["fp16"]\nextra = "t"\n[models]\nmine = "models/mine.onnx"\n'
    )
    sweep = load_sweep(path)
    assert sweep.models == {"mine": tmp_path / "models" / "mine.onnx"}
    assert [s.name for s in sweep.specs()][:2] == ["mobilenet_v3_small_1_120_392_fp16_t", "mobilenet_v3_small_4_120_392_fp16_t"]
    path.write_text("backbone = ['resnet18']\n")
    with pytest.raises(BadInput, match="unknown keys"):
        load_sweep(path)
    path.write_text("backbones = [\n")
    with pytest.raises(BadInput, match="not valid TOML"):
        load_sweep(path)
    with pytest.raises(BadInput, match="does not exist"):
        load_sweep(tmp_path / "nope.toml")
