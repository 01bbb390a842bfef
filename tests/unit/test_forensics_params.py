"""Forensics parameters, configurations, conventions and the overlap parser: pure functions, no model."""

from __future__ import annotations

import pytest

from pack.errors import PackError
from pack.experiments.forensics import configs
from pack.experiments.forensics.analysis import classify, timepoints
from pack.experiments.forensics.extraction import ExtractionSpec, check_positions, resolve_layers
from pack.experiments.forensics.streams import overlap_from_trace

pytestmark = pytest.mark.forensics


def test_parse_rejects_unknown_params_with_a_hint():
    with pytest.raises(PackError, match=r"unknown key 'params.layer'; did you mean 'layers'\?"):
        configs.parse({"experiment_type": "reference", "layer": [1]})


@pytest.mark.parametrize(
    "params, match",
    [
        ({"experiment_type": "batchsize"}, "Input should be 'reference', 'batch_size'"),
        ({"experiment_type": "batch_size"}, "must list the values"),
        ({"experiment_type": "batch_size", "values": [1, 2]}, "integers >= 2"),
        ({"experiment_type": "quantization", "values": ["int3"]}, "among gptq, bnb, awq"),
        ({"experiment_type": "cuda_version", "values": ["11.8", "12.1"]}, "one version string"),
        ({"experiment_type": "reference", "values": [2]}, "must be empty"),
        ({"experiment_type": "reference", "decode_steps": 0}, "greater than or equal to 1"),
    ],
)
def test_parse_rejects_bad_values(params, match):
    with pytest.raises(PackError, match=match):
        configs.parse(params)


def test_labels_are_stable_metric_prefixes():
    assert [configs.label_for("batch_size", v) for v in (2, 4)] == ["bs2", "bs4"]
    assert configs.label_for("cuda_version", "11.8") == "cu118"
    assert configs.label_for("tensor_parallel", 4) == "tp4"
    assert configs.label_for("concurrent_streams", True) == "streams"


def _plan(params, device="cpu", n_gpus=0, **facts):
    p = configs.parse(params)
    base = configs.baseline_settings("sdpa", "bf16", None)
    f = {"n_kv_heads": 2, "n_experts": 8, "synthetic": True, "cuda_running": None} | facts
    return {c.label: c for c in configs.plan(p, base, device=device, n_gpus=n_gpus, model_facts=f)}


def test_plan_changes_only_the_variable():
    cfgs = _plan({"experiment_type": "batch_size", "values": [2, 4]})
    assert cfgs["bs4"].settings == configs.baseline_settings("sdpa", "bf16", None) | {"batch_size": 4}
    assert all(c.not_applicable is None for c in cfgs.values())


def test_gpu_only_configurations_are_not_applicable_on_a_cpu_with_the_reason():
    assert (
        "need a CUDA GPU"
        in _plan({"experiment_type": "concurrent_streams", "values": [True]})["streams"].not_applicable
    )
    assert "no CUDA" in _plan({"experiment_type": "cuda_version", "values": ["11.8"]})["cu118"].not_applicable
    na = _plan(
        {"experiment_type": "cuda_version", "values": ["11.8"]}, device="cuda", n_gpus=1, cuda_running="12.8"
    )
    assert "CUDA 12.8" in na["cu118"].not_applicable and "cu118" in na["cu118"].not_applicable
    ok = _plan(
        {"experiment_type": "cuda_version", "values": ["11.8"]}, device="cuda", n_gpus=1, cuda_running="11.8"
    )
    assert ok["cu118"].not_applicable is None


def test_parallel_sizes_are_checked_against_gpus_and_model_shape():
    tp = _plan({"experiment_type": "tensor_parallel", "values": [2, 4]})
    assert tp["tp2"].not_applicable is None  # gloo on a CPU
    assert "does not divide the model's 2 KV heads" in tp["tp4"].not_applicable
    on_one_gpu = _plan({"experiment_type": "expert_parallel", "values": [2]}, device="cuda", n_gpus=1)
    assert "needs 2 GPUs; this machine has 1" in on_one_gpu["ep2"].not_applicable


def test_quantization_without_backend_or_checkpoint_is_not_applicable():
    cfgs = _plan({"experiment_type": "quantization", "values": ["gptq", "bnb"]})
    assert "no pre-quantized gptq checkpoint" in cfgs["gptq"].not_applicable
    assert cfgs["bnb"].not_applicable  # bitsandbytes absent here, or no CUDA


def test_layers_resolve_last_and_refuse_indices_beyond_the_model():
    assert resolve_layers([1, 2, 4, 12, "last"], 14) == (1, 2, 4, 12, 14)
    assert resolve_layers([1, "last", 14], 14) == (1, 14)
    with pytest.raises(PackError, match=r"layer 20 is beyond m, which has 14 decoder layers \(valid: 1..14"):
        resolve_layers([1, 20], 14, "m")
    with pytest.raises(PackError, match="layer 0 is the embedding output"):
        resolve_layers([0], 14)
    with pytest.raises(PackError, match="not an integer"):
        resolve_layers(["first"], 14)


def test_positions_and_unique_index_mapping():
    assert check_positions([-1, -3, -2]) == (-3, -2, -1)
    for bad in ([0], [1], [], [-20], ["a"]):
        with pytest.raises(PackError):
            check_positions(bad)
    spec = ExtractionSpec(layers=(1,), positions=(-3, -2, -1), top_k=10, steps=30)
    assert spec.n_unique == 32
    # step 0 (prefill): positions -3, -2, -1 are unique rows 0, 1, 2; step t's -1 is row t + 2,
    # and its -2 is the previous step's -1.
    assert [spec.unique_index(0, p) for p in (-3, -2, -1)] == [0, 1, 2]
    assert spec.unique_index(5, -1) == 7 and spec.unique_index(6, -2) == 7 and spec.unique_index(7, -3) == 7
    idx = timepoints(3, 30, [-3, -2, -1])
    assert len(idx) == 90 and max(idx) == 31 and idx[:3] == [0, 1, 2]


@pytest.mark.parametrize(
    "snr, label",
    [
        (11, "Strong"),
        (float("inf"), "Strong"),
        (10, "Moderate"),
        (3.5, "Moderate"),
        (3, "Weak"),
        (1.01, "Weak"),
        (1, "Not Detectable"),
        (0, "Not Detectable"),
        (None, "n/a"),
    ],
)
def test_classification_thresholds_follow_the_seed(snr, label):
    assert classify(snr) == label


def _kernel(ts, dur, corr, stream):
    return {
        "ph": "X",
        "cat": "kernel",
        "name": "k",
        "ts": ts,
        "dur": dur,
        "args": {"correlation": corr, "stream": stream},
    }


def _launch(corr, tid):
    return {
        "ph": "X",
        "cat": "cuda_runtime",
        "name": "cudaLaunchKernel",
        "ts": 0,
        "dur": 1,
        "tid": tid,
        "args": {"correlation": corr},
    }


def test_overlap_is_measured_from_kernel_intervals_by_launching_thread():
    # inference kernels (thread 100, stream 7): [0,10], [20,30]; workload (thread 200, stream 13): [5,25]
    events = [
        _launch(1, 100),
        _launch(2, 100),
        _launch(3, 200),
        _kernel(0, 10, 1, 7),
        _kernel(20, 10, 2, 7),
        _kernel(5, 20, 3, 13),
    ]
    ov = overlap_from_trace(events, workload_tid=200)
    assert ov["inference_busy_us"] == 20 and ov["workload_busy_us"] == 20
    assert ov["overlap_us"] == 10 and ov["overlap_fraction"] == pytest.approx(0.5)
    assert ov["window_us"] == 30 and ov["workload_utilisation"] == pytest.approx(20 / 30)
    assert ov["streams"] == {"inference": [7], "workload": [13]}
    assert ov["attribution"].startswith("launching thread")


def test_overlap_falls_back_to_the_stream_of_the_long_matmuls():
    # thread ids that match nothing (a trace whose tids are not OS ids): stream 13's kernels are longest
    events = [
        _launch(1, 5),
        _launch(2, 5),
        _launch(3, 6),
        _kernel(0, 2, 1, 7),
        _kernel(20, 2, 2, 7),
        _kernel(1, 30, 3, 13),
    ]
    ov = overlap_from_trace(events, workload_tid=200, main_tid=100)
    assert ov["attribution"] == "stream with the longest mean kernel"
    assert ov["workload_kernels"] == 1 and ov["overlap_us"] == 3


def test_no_workload_kernels_means_overlap_is_not_proven():
    with pytest.raises(ValueError, match="overlap is not proven"):
        overlap_from_trace([_launch(1, 100), _kernel(0, 10, 1, 7)], workload_tid=200)


def test_cli_startup_and_catalogue_commands_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from pack.cli import main\nfor args in (['--help'], ['list', 'forensics'], ['show', "
        "'exp1'], ['validate'], ['analyze', '--help']):\n    try:\n        main(args)\n    except "
        "SystemExit:\n        pass\nprint(sorted(m for m in ('torch', 'transformers', 'safetensors', "
        "'matplotlib') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_a_row_whose_variable_cannot_run_anywhere_here_is_row_not_applicable():
    from types import SimpleNamespace

    from pack.experiments.forensics.experiment import variable_never_runs

    p = SimpleNamespace(variable="quantization")
    base = {"label": "baseline", "is_baseline": True, "not_applicable": None}
    gptq = {"label": "gptq", "is_baseline": False, "not_applicable": "no GPTQ backend (auto-gptq) installed"}
    bnb = {"label": "bnb", "is_baseline": False, "not_applicable": "bitsandbytes needs a CUDA GPU"}
    why = variable_never_runs(p, [base, gptq, bnb])
    assert why and "quantization" in why and "auto-gptq" in why and "CUDA" in why
    assert variable_never_runs(p, [base, gptq, {**bnb, "not_applicable": None}]) is None
    assert variable_never_runs(SimpleNamespace(variable=None), [base]) is None  # reference: no variable
