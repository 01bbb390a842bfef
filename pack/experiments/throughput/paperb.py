"""Paper B's engine (a llama.cpp fork): its output lines and its ablation arms, as data.

Output lines of its public ablation script, and the `command` parsers that read them
(manifests/paperB.yaml carries the same specs; tests/unit check the two agree):

    [PPL-JSON] {"ppl": 7.2341, "nll": 1.9788, ...}          --ppl-eval runs
    Decode-only: prefill 12.3 ms, 39.28 tok/s                 throughput runs
    [ONB] rejections=3 updates=41 layers_updated=12           --axex-online-basis
    [AXEX-GAUGE] iter 4/8 |Newton_grad|_rms=1.2e-05           --axex-gauge (one line per iteration)

The rows run through the `command` experiment; its A/B statistics and watches are the generic
ones of pack.experiments.arms.
"""

from __future__ import annotations

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

PARSERS: list[dict] = [
    {
        "name": "decode",
        "regex": rf"Decode-only: prefill (?P<prefill_ms>{_NUM}) ms, (?P<decode_tok_s>{_NUM}) tok/s",
    },
    {"name": "ppl", "json_prefix": "[PPL-JSON]", "fields": {"ppl": "ppl", "nll": "nll"}},
    {
        "name": "onb",
        "regex": r"\[ONB\] rejections=(?P<onb_rejections>\d+) updates=(?P<onb_updates>\d+) "
        r"layers_updated=(?P<onb_layers_updated>\d+)",
    },
    {
        "name": "gauge",
        "regex": rf"\[AXEX-GAUGE\] iter (?P<gauge_iter>\d+)/(?P<gauge_iters>\d+) "
        rf"\|Newton_grad\|_rms=(?P<gauge_grad_rms>{_NUM})",
    },
]

COMPRESS_FLAGS = [
    "--axex-compress",
    "--axex-weight-pca",
    "--axex-compress-rank",
    "{rank}",
    "--axex-attn-only",
    "--axex-skip-o",
    "--axiom-skip-geodesic",
]
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
