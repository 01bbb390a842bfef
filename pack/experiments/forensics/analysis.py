"""The seed's four questions, per signal and layer, for one (possibly merged) experiment file.

Distances follow the seed's `compute_l2_distance`: for two decodes, the Euclidean distance of
each vector at every (decode step, position) pair — 30 x 3 = 90 timepoints — averaged. Signals:
`hidden_states/layer_k`, `key_vectors/layer_k` and `logprobs` (the top-k log-probability vectors
compared rank by rank; `topk_id_mismatch` is the share of timepoints whose top-k ids differ).
`first_token_divergence` is the first decode step whose generated token differs (-1: none).

1. reproducibility         each configuration's repetitions against each other (0 when bit-identical)
2. cross-hardware baseline  the same configuration on two GPU kinds; its mean over configurations
                            is the noise (the seed's baseline_noise)
3. within-hardware          each variant against the baseline on the same GPU kind
4. cross-hardware detect.   a variant on kind A against the baseline on kind B, divided by
                            baseline(A) against baseline(B) (seed: left unimplemented)

SNR = within-hardware distance / cross-hardware noise, classified Strong > 10, Moderate > 3,
Weak > 1, else Not Detectable. With one hardware kind there is no noise estimate: the analysis
says so and reports within-hardware distances only (with bit-identical repetitions any distance
above zero already separates the configurations on that machine).
"""

from __future__ import annotations

import itertools
import math

HEADLINE = "hidden_states/last"  # the seed's default signal: hidden states at the last layer


def classify(snr: float | None) -> str:
    if snr is None or (isinstance(snr, float) and math.isnan(snr)):
        return "n/a"
    if snr > 10:
        return "Strong"
    if snr > 3:
        return "Moderate"
    if snr > 1:
        return "Weak"
    return "Not Detectable"


def _np(t):
    return t.double().numpy() if t.is_floating_point() else t.numpy()


def load_vectors(tensors: dict, key: str) -> dict:
    """One key's arrays: {"hidden_states/layer_k": [P, H] float64, ..., "logprobs": [P, K],
    "logprob_ids": [P, K], "tokens": [S]}."""
    out = {}
    for name, t in tensors.items():
        if not name.startswith(key + "/"):
            continue
        rest = name[len(key) + 1 :]
        if rest == "logprobs/log_probs":
            out["logprobs"] = _np(t)
        elif rest == "logprobs/token_ids":
            out["logprob_ids"] = _np(t)
        else:
            out[rest] = _np(t)
    return out


def timepoints(depth: int, steps: int, positions) -> list[int]:
    """Unique-position index of every (step, position) pair, step-major: the seed's 90 timepoints."""
    return [t + depth + j for t in range(steps) for j in positions]


def compare(a: dict, b: dict, idx: list[int]) -> dict:
    """Distances between two decodes: {signal: {mean, max, rel}} plus logprob and token facts."""
    import numpy as np

    out: dict = {}
    for name in sorted(k for k in a if "/layer_" in k and k in b):
        x, y = a[name][idx], b[name][idx]
        d = np.linalg.norm(x - y, axis=1)
        scale = float(np.linalg.norm(x, axis=1).mean()) or 1.0
        out[name] = {"mean": float(d.mean()), "max": float(d.max()), "rel": float(d.mean()) / scale}
    if "logprobs" in a and "logprobs" in b:
        d = np.linalg.norm(a["logprobs"][idx] - b["logprobs"][idx], axis=1)
        out["logprobs"] = {
            "mean": float(d.mean()),
            "max": float(d.max()),
            "rel": float(d.mean()) / (float(np.linalg.norm(a["logprobs"][idx], axis=1).mean()) or 1.0),
        }
        out["topk_id_mismatch"] = float((a["logprob_ids"][idx] != b["logprob_ids"][idx]).any(axis=1).mean())
    ta, tb = a.get("tokens"), b.get("tokens")
    diff = (
        [i for i, (u, v) in enumerate(zip(ta, tb, strict=False)) if u != v]
        if ta is not None and tb is not None
        else []
    )
    out["first_token_divergence"] = diff[0] if diff else -1
    return out


def _alias_last(dist: dict, last_layer: int) -> dict:
    """Add hidden_states/last and key_vectors/last aliases, so summaries need not know the depth."""
    for sig in ("hidden_states", "key_vectors"):
        k = f"{sig}/layer_{last_layer}"
        if k in dist:
            dist[f"{sig}/last"] = dist[k]
    return dist


class Experiment:
    """One experiment document with its tensors, indexed for the four questions."""

    def __init__(self, doc: dict, tensors: dict):
        self.doc, self.tensors = doc, tensors
        meta = doc["experiment_metadata"]
        ec = meta["extraction_config"]
        self.type = meta["experiment_type"]
        self.variable = meta["variable_tested"]
        self.positions = ec["positions"]
        self.depth = max(-p for p in self.positions)
        self.steps = int(meta["decode_steps"])
        self.last_layer = max(ec["layers"])
        self.idx = timepoints(self.depth, self.steps, self.positions)
        self.configs = {c["config_id"]: c for c in doc["configurations"]}
        self.runs: dict[str, list[dict]] = {}
        for r in doc["runs"]:
            if r.get("signals_key"):
                self.runs.setdefault(r["config_id"], []).append(r)
        for rs in self.runs.values():
            rs.sort(key=lambda r: r["rep_id"])
        self._vec: dict[str, dict] = {}

    def hardware_of(self, cid: str) -> str:
        c = self.configs[cid]
        return c.get("hardware_tag") or c["hardware"]

    def label_of(self, cid: str) -> str:
        c = self.configs[cid]
        return c.get("label") or str(c.get("variable_value"))

    def vectors(self, run: dict) -> dict:
        key = run["signals_key"]
        if key not in self._vec:
            self._vec[key] = load_vectors(self.tensors, key)
        return self._vec[key]

    def distance(self, ra: dict, rb: dict) -> dict:
        if ra.get("signals_sha256") and ra.get("signals_sha256") == rb.get("signals_sha256"):
            d = compare(self.vectors(ra), self.vectors(ra), self.idx)  # bit-identical: all zeros, same keys
        else:
            d = compare(self.vectors(ra), self.vectors(rb), self.idx)
        return _alias_last(d, self.last_layer)

    def hardware(self) -> list[str]:
        return sorted({self.hardware_of(c) for c in self.runs})

    def baseline(self, hw: str) -> str | None:
        ids = [c for c in self.runs if self.hardware_of(c) == hw]
        marked = [c for c in ids if self.configs[c].get("is_baseline")]
        return (marked or ids or [None])[0]  # the seed takes the first configuration when none is marked

    def reproducibility(self) -> dict:
        out = {}
        for cid, rs in self.runs.items():
            pairs = {
                f"rep{a['rep_id']}_vs_rep{b['rep_id']}": self.distance(a, b)[HEADLINE]["mean"]
                for a, b in itertools.combinations(rs, 2)
            }
            vals = list(pairs.values())
            out[cid] = {
                "pairs": pairs,
                "reps": len(rs),
                "mean": sum(vals) / len(vals) if vals else 0.0,
                "max": max(vals) if vals else 0.0,
                "bit_identical": len({r.get("signals_sha256") for r in rs}) == 1,
                "status": self.configs[cid].get("status", "ok"),
            }
        return out

    def within_hardware(self) -> dict:
        out: dict = {}
        for hw in self.hardware():
            base = self.baseline(hw)
            out[hw] = {}
            for cid in self.runs:
                if self.hardware_of(cid) != hw or cid == base:
                    continue
                out[hw][self.label_of(cid)] = {
                    "config_id": cid,
                    "baseline_config": base,
                    "distance": self.distance(self.runs[base][0], self.runs[cid][0]),
                }
        return out

    def cross_hardware_baseline(self) -> dict:
        out: dict = {}
        for a, b in itertools.combinations(self.hardware(), 2):
            pair = {}
            la = {self.label_of(c): c for c in self.runs if self.hardware_of(c) == a}
            lb = {self.label_of(c): c for c in self.runs if self.hardware_of(c) == b}
            for label in sorted(set(la) & set(lb)):
                pair[label] = self.distance(self.runs[la[label]][0], self.runs[lb[label]][0])
            if pair:
                out[f"{a}|{b}"] = pair
        return out

    def noise(self, cross: dict) -> dict:
        """Mean cross-hardware distance per signal over all pairs and configurations (seed's noise)."""
        acc: dict[str, list[float]] = {}
        for pair in cross.values():
            for dist in pair.values():
                for sig, v in dist.items():
                    if isinstance(v, dict):
                        acc.setdefault(sig, []).append(v["mean"])
        return {sig: sum(v) / len(v) for sig, v in acc.items()}

    def cross_hardware_detectability(self) -> dict:
        out: dict = {}
        hws = self.hardware()
        for a, b in itertools.permutations(hws, 2):
            base_a, base_b = self.baseline(a), self.baseline(b)
            if not base_a or not base_b:
                continue
            ref = self.distance(self.runs[base_a][0], self.runs[base_b][0])
            rows = {}
            for cid in self.runs:
                if self.hardware_of(cid) != a or cid == base_a:
                    continue
                d = self.distance(self.runs[cid][0], self.runs[base_b][0])
                rows[self.label_of(cid)] = {
                    "variant_config": cid,
                    "baseline_config": base_b,
                    "distance": d,
                    "ratio": {s: _ratio(d[s]["mean"], ref[s]["mean"]) for s in d if isinstance(d[s], dict)},
                }
            out[f"{a}->{b}"] = {"baseline_vs_baseline": ref, "variants": rows}
        return out

    def report(self) -> dict:
        within = self.within_hardware()
        cross = self.cross_hardware_baseline()
        noise = self.noise(cross)
        for hw_rows in within.values():
            for row in hw_rows.values():
                d = row["distance"]
                row["snr"] = {
                    s: _ratio(d[s]["mean"], noise[s]) if s in noise else None
                    for s in d
                    if isinstance(d[s], dict)
                }
                row["classification"] = {s: classify(v) for s, v in row["snr"].items()}
        return {
            "experiment": self.type,
            "variable": self.variable,
            "hardware": self.hardware(),
            "hardware_names": sorted({self.configs[c]["hardware"] for c in self.runs}),
            "one_hardware_kind": len(self.hardware()) < 2,
            "reproducibility": self.reproducibility(),
            "cross_hardware_baseline": cross,
            "noise": noise,
            "within_hardware_detectability": within,
            "cross_hardware_detectability": self.cross_hardware_detectability(),
        }


def _ratio(signal: float, noise: float) -> float | None:
    if noise is None:
        return None
    if noise == 0:
        return math.inf if signal > 0 else 0.0
    return signal / noise


def summary_row(rep: dict) -> dict:
    """The seed's create_summary_table row, per signal: max within-hardware signal vs the noise."""
    rows = {}
    signals = set()
    for hw_rows in rep["within_hardware_detectability"].values():
        for row in hw_rows.values():
            signals |= {s for s in row["distance"] if isinstance(row["distance"][s], dict)}
    for sig in sorted(signals | set(rep["noise"])):
        vals = [
            row["distance"][sig]["mean"]
            for hw_rows in rep["within_hardware_detectability"].values()
            for row in hw_rows.values()
            if sig in row["distance"]
        ]
        noise = rep["noise"].get(sig)
        if not vals:  # the reference experiment: only the cross-hardware noise itself
            rows[sig] = {
                "baseline_l2": noise,
                "max_signal_l2": None,
                "snr": None,
                "detectability": "n/a (no variant)",
            }
            continue
        max_signal = max(vals)
        snr = _ratio(max_signal, noise) if noise is not None else None
        rows[sig] = {
            "baseline_l2": noise,
            "max_signal_l2": max_signal,
            "snr": snr,
            "detectability": classify(snr),
        }
    return {
        "experiment": rep["experiment"],
        "variable": rep["variable"],
        "one_hardware_kind": rep["one_hardware_kind"],
        "signals": rows,
        "headline": rows.get(HEADLINE),
    }
