"""A local fake of RunPod's GraphQL endpoint on 127.0.0.1, speaking the requests the runpod SDK
sends (RUNPOD_API_BASE_URL points the SDK at it). It keeps pods in memory and records every query,
so tests assert what would have been created and removed."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_FIELD = re.compile(r'(\w+): ("(?:[^"\\]|\\.)*"|\[[^\]]*\]|[\w.-]+)')


def parse_input(query: str) -> dict:
    """The `input: { … }` fields of a mutation as a dict (strings unquoted, env as a dict)."""
    body = query[query.index("input:") :]
    out = {}
    for k, v in _FIELD.findall(body):
        if k in out:
            continue
        if v.startswith('"'):
            out[k] = v[1:-1]
        elif v.startswith("["):
            out[k] = (
                {m[0]: m[1] for m in re.findall(r'key: "([^"]*)", value: "([^"]*)"', v)} if "key:" in v else v
            )
        else:
            out[k] = v
    return out


class FakeRunPod:
    def __init__(
        self, api_key: str = "test-key", gpu_types=("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB")
    ):
        self.api_key, self.gpu_types = api_key, set(gpu_types)
        self.pods: dict[str, dict] = {}
        self.queries: list[str] = []
        self.created: list[dict] = []
        self.terminated: list[str] = []
        self._n = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/graphql":
                    return self._send(404, {"errors": [{"message": "not found"}]})
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._send(401, {"errors": [{"message": "unauthorized"}]})
                fake.queries.append(body["query"])
                self._send(200, fake.answer(body["query"]))

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def add_pod(self, pod_id: str, name: str, env: dict) -> None:
        self.pods[pod_id] = {
            "id": pod_id,
            "name": name,
            "desiredStatus": "RUNNING",
            "env": [f"{k}={v}" for k, v in env.items()],
            "imageName": "x",
            "gpuCount": 1,
        }

    def answer(self, q: str) -> dict:
        if "gpuTypes(input:" in q:
            gid = re.search(r'id: "([^"]+)"', q).group(1)
            found = [{"id": gid, "displayName": gid, "memoryInGb": 80}] if gid in self.gpu_types else []
            return {"data": {"gpuTypes": found}}
        if "podFindAndDeployOnDemand" in q:
            fields = parse_input(q)
            self._n += 1
            pod_id = f"pod{self._n:04d}"
            self.created.append(fields)
            self.add_pod(pod_id, fields["name"], fields.get("env") or {})
            self.pods[pod_id]["imageName"] = fields["imageName"]
            return {
                "data": {
                    "podFindAndDeployOnDemand": {
                        "id": pod_id,
                        "imageName": fields["imageName"],
                        "env": [],
                        "machineId": "m1",
                        "machine": {"podHostId": "h1"},
                    }
                }
            }
        if "podTerminate" in q:
            pod_id = re.search(r'podId: "([^"]+)"', q).group(1)
            self.terminated.append(pod_id)
            self.pods.pop(pod_id, None)
            return {"data": {"podTerminate": None}}
        if "query pod" in q:
            pod_id = re.search(r'podId: "([^"]+)"', q).group(1)
            return {"data": {"pod": self.pods.get(pod_id)}}
        if "myPods" in q:
            return {"data": {"myself": {"pods": list(self.pods.values())}}}
        return {"errors": [{"message": f"fake RunPod does not know this query: {q[:80]}"}]}
