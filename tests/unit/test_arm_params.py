"""The `Params` models of the arm experiments (command, throughput_llamacpp, throughput_hf): every
shipped row fits them at both scales, and a typo is one sentence with a suggestion."""

import pytest

from pack.errors import ManifestError
from pack.experiments import command
from pack.experiments.params import parse as validated
from pack.experiments.throughput import hf, llamacpp
from pack.manifest import get_manifest

pytestmark = pytest.mark.throughput

MODELS = {"command": command.Params, "throughput_llamacpp": llamacpp.Params, "throughput_hf": hf.Params}
PAPERS = ["paperB", "latent-bridge", "local-ablation"]


def _rows():
    for paper in PAPERS:
        m = get_manifest(paper)
        for row in m.rows:
            if row.experiment in MODELS:
                yield paper, row


@pytest.mark.parametrize("paper, row", list(_rows()), ids=lambda x: getattr(x, "id", x))
def test_every_shipped_row_fits_its_params_model(paper, row):
    for scale in ("smoke", "full"):
        validated(MODELS[row.experiment], row.at(scale).params, row.experiment)


def _engine(**extra):
    return get_manifest("paperB").row("mcr-null").at("full").params | extra


@pytest.mark.parametrize(
    "params, says",
    [
        (
            _engine(ab={"metric": "decode_tok_s", "variance_ratio_limt": 5}),
            r"unknown key 'params.ab.variance_ratio_limt'; did you mean 'variance_ratio_limit'\?",
        ),
        (
            _engine(ab={"order": "shuffled"}),
            r"'params.ab.order': Input should be 'interleaved' or 'alternate'",
        ),
        (_engine(ab={"floor": {"value": "38"}}), r"params.ab.floor.value"),
        (
            _engine(arms={"baseline": {"argz": []}}),
            r"unknown key 'params.arms.baseline.argz'; did you mean 'args'\?",
        ),
        (_engine(parser=[]), r"'parser' is not a command param \(did you mean 'parsers'\?\)"),
        (_engine(parsers=[{"name": "decode", "regex": "("}]), r"parser 'decode': regex does not compile"),
        (
            _engine(parsers=[{"name": "decode"}]),
            r"needs exactly one of 'regex', 'json_prefix' or 'json_file'",
        ),
        (_engine(outputs={"cvs": "x.csv"}), r"unknown key 'params.outputs.cvs'; did you mean 'csv'\?"),
        ({"args": []}, r"needs params.executable or params.script"),
    ],
)
def test_command_params_errors_name_the_key_and_the_fix(params, says):
    with pytest.raises(ManifestError, match=says):
        validated(command.Params, params, "command")


def test_a_template_value_used_by_no_argument_is_allowed_unless_it_looks_like_a_param():
    p = validated(command.Params, _engine(rank=1024), "command")  # shared through YAML merges
    assert "mcr_args" in p.template_names() and "model" in p.template_names()


def test_throughput_params_errors():
    row = get_manifest("paperB").row("llamacpp-null").at("smoke").params
    with pytest.raises(ManifestError, match=r"'params.type_k': Input should be 'f32', 'f16' or 'q8_0'"):
        validated(llamacpp.Params, row | {"type_k": "q4"}, "throughput_llamacpp")
    assert validated(llamacpp.Params, row | {"type_k": "F16"}, "throughput_llamacpp").type_k == "f16"
    with pytest.raises(
        ManifestError, match=r"unknown key 'params.arms.mcr.n_thread'; did you mean 'n_threads'"
    ):
        validated(llamacpp.Params, row | {"arms": {"mcr": {"n_thread": 2}}}, "throughput_llamacpp")
    hrow = get_manifest("paperB").row("harness-null").at("smoke").params
    with pytest.raises(ManifestError, match=r"unknown key 'params.n_decod'; did you mean 'n_decode'\?"):
        validated(hf.Params, hrow | {"n_decod": 3}, "throughput_hf")
