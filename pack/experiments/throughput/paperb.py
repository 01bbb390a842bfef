"""Paper B's engine (a llama.cpp fork) driven through the `command` experiment.

Output lines of its public ablation script, and the `command` parsers that read them
(manifests/paperB.yaml carries the same specs; tests/unit check the two agree):

    [PPL-JSON] {"ppl": 7.2341, "nll": 1.9788, ...}          --ppl-eval runs
    Decode-only: prefill 12.3 ms, 39.28 tok/s                 throughput runs
    [ONB] rejections=3 updates=41 layers_updated=12           --axex-online-basis
    [AXEX-GAUGE] iter 4/8 |Newton_grad|_rms=1.2e-05           --axex-gauge (one line per iteration)

A `command` row with params.ab gets, from here, the NVML watch around each repetition's arms and
the A/B summary (harness.summarize) over the arms that printed the compared metric.
"""

from __future__ import annotations

from ...results import RepResult, RunContext
from . import harness
from .contamination import GpuWatch, own_pids
from .harness import note_contamination  # noqa: F401  (command.py's hook)

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

PARSERS: list[dict] = [
    {"name": "decode", "regex": rf"Decode-only: prefill (?P<prefill_ms>{_NUM}) ms, (?P<decode_tok_s>{_NUM}) tok/s"},
    {"name": "ppl", "json_prefix": "[PPL-JSON]", "fields": {"ppl": "ppl", "nll": "nll"}},
    {"name": "onb", "regex": r"\[ONB\] rejections=(?P<onb_rejections>\d+) updates=(?P<onb_updates>\d+) "
                             r"layers_updated=(?P<onb_layers_updated>\d+)"},
    {"name": "gauge", "regex": rf"\[AXEX-GAUGE\] iter (?P<gauge_iter>\d+)/(?P<gauge_iters>\d+) "
                               rf"\|Newton_grad\|_rms=(?P<gauge_grad_rms>{_NUM})"},
]

COMPRESS_FLAGS = ["--axex-compress", "--axex-weight-pca", "--axex-compress-rank", "{rank}", "--axex-attn-only",
                  "--axex-skip-o", "--axiom-skip-geodesic"]
ARMS = {  # the public ablation script's five arms
    "baseline": [],
    "compress": COMPRESS_FLAGS,
    "compress_gauge": COMPRESS_FLAGS + ["--axex-gauge", "{gauge_iter_args}"],
    "compress_online": COMPRESS_FLAGS + ["--axex-online-basis", "--ott-speculative"],
    "compress_spec": COMPRESS_FLAGS + ["--ott-speculative"],
}


def parser(name: str, arms: list[str] | None = None, **extra) -> dict:
    spec = dict(next(p for p in PARSERS if p["name"] == name))
    if arms:
        spec["arms"] = arms
    return spec | extra


def watch(params: dict, ctx: RunContext) -> GpuWatch:
    """The NVML watch around one repetition's engine processes (ours: live children of this process)."""
    import sys

    def own() -> int:
        torch = sys.modules.get("torch")
        mine = int(bool(torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()))
        return mine + len(own_pids()) - 1

    return harness.watch_for(params, ctx, own)


def summarize(params: dict, ctx: RunContext, reps: list[RepResult]) -> RepResult:
    """A/B summary of a command row; the roofline from params.roofline.model (a GGUF) if given."""
    spec = params.get("roofline") or {}
    bpt_error = None
    if isinstance(spec, dict) and spec.get("model") and not spec.get("bytes_per_token"):
        from ...errors import PackError
        from ...models.gguf import check_gguf
        from ..argv import render_args
        from .roofline import gguf_bytes_per_token

        try:
            info = check_gguf(render_args([spec["model"]], params)[0])
            bpt = gguf_bytes_per_token(info, float(spec.get("position", 64)))["total"]
            params = params | {"roofline": spec | {"bytes_per_token": bpt}}
        except PackError as e:
            bpt_error = str(e)
    fields = ("decode_tok_s", "prefill_ms", "wall_s")
    out = harness.summarize(params, ctx, reps, fields=fields)
    if bpt_error:
        out.info["roofline"] = f"no roofline: {bpt_error}"
    return out
