"""Weight-sync protocol against a FAKE vLLM server (httpx MockTransport): call order, atomic folders, fallback to the
last good weights when a reload fails, and the pre-flight checks that keep bad weights away from the engine.
The real server is exercised in test_weight_sync_vllm.py."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import save_file

from agentlightning.verl.weight_sync import VLLMWeightSync, WeightSyncError


class FakeVLLMServer:
    """Records the control calls; `fail_reload_of` makes reloads of that folder answer HTTP 500."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_reload_of: str | None = None
        self.methods = {"agl_reload_weights", "reload_weights"}  # the worker's: ours needs the worker extension

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/collective_rpc":
            body = json.loads(request.content)
            folder = body["kwargs"]["weights_path"]
            self.calls.append(f"{body['method']} {Path(folder).name}")
            if body["method"] not in self.methods:
                return httpx.Response(500, json={"error": f"'CPUWorker' object has no attribute '{body['method']}'"})
            if folder == self.fail_reload_of:
                return httpx.Response(500, json={"error": "boom"})
        else:
            self.calls.append(request.url.path + (f"?{request.url.query.decode()}" if request.url.query else ""))
        return httpx.Response(200, json={})


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    save_file({"w": torch.zeros(2, 3)}, str(tmp_path / "model.safetensors"))
    return tmp_path


def test_push_order_and_fallback(tmp_path: Path, model_dir: Path) -> None:
    fake = FakeVLLMServer()
    sync = VLLMWeightSync("http://fake:1", root=tmp_path / "w", model_path=model_dir,
                          transport=httpx.MockTransport(fake))
    sync.push([("w", torch.ones(2, 3))])
    assert fake.calls == ["/pause?mode=wait", "agl_reload_weights v1", "/reset_prefix_cache", "/resume"]
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["v1"]  # no .tmp- left behind

    fake.calls.clear()
    fake.fail_reload_of = str(tmp_path / "w" / "v2")
    with pytest.raises(WeightSyncError, match="restored to .*v1"):
        sync.push([("w", torch.full((2, 3), 2.0))])
    assert fake.calls == ["/pause?mode=wait", "agl_reload_weights v2", "agl_reload_weights v1", "/reset_prefix_cache", "/resume"]
    assert sync.last_good == tmp_path / "w" / "v1"

    fake.calls.clear()
    sync.push([("w", torch.full((2, 3), 3.0))])  # v3 replaces v1 as the last good folder
    assert sync.last_good == tmp_path / "w" / "v3" and not (tmp_path / "w" / "v1").exists()


def test_server_without_our_worker_extension_is_explained(tmp_path: Path, model_dir: Path) -> None:
    fake = FakeVLLMServer()
    fake.methods = {"reload_weights"}
    sync = VLLMWeightSync("http://fake:1", root=tmp_path / "w", model_path=model_dir,
                          transport=httpx.MockTransport(fake))
    with pytest.raises(WeightSyncError, match="lacks our worker extension. Fix: start it with VLLMServer"):
        sync.push([("w", torch.ones(2, 3))])
    assert fake.calls[-1] == "/resume"  # the server is resumed, not left paused
    plain = VLLMWeightSync("http://fake:1", root=tmp_path / "p", model_path=model_dir,
                           transport=httpx.MockTransport(fake), reload_method="reload_weights")
    plain.push([("w", torch.ones(2, 3))])
    assert "reload_weights v1" in fake.calls


def test_preflight_refuses_bad_weights_without_touching_the_server(tmp_path: Path, model_dir: Path) -> None:
    fake = FakeVLLMServer()
    sync = VLLMWeightSync("http://fake:1", root=tmp_path / "w", model_path=model_dir,
                          transport=httpx.MockTransport(fake))
    with pytest.raises(WeightSyncError, match=r"shape \(3, 3\) but the served model expects \(2, 3\)"):
        sync.push([("w", torch.zeros(3, 3))])
    with pytest.raises(WeightSyncError, match="not a weight of the served model"):
        sync.push([("extra", torch.zeros(1))])
    with pytest.raises(WeightSyncError, match="does not exist"):
        sync.push_folder(tmp_path / "missing")
    assert fake.calls == []


def test_server_url_must_be_the_root() -> None:
    with pytest.raises(ValueError, match="not the /v1"):
        VLLMWeightSync("http://127.0.0.1:8000/v1")


def test_tied_weights_are_written_once_and_dtype_follows_the_server(tmp_path: Path) -> None:
    from safetensors import safe_open

    from agentlightning.verl.weight_sync import torch_dtype, write_weights_atomically

    embed = torch.randn(4, 3)
    tensors = [("model.embed_tokens.weight", embed), ("lm_head.weight", embed), ("norm.weight", torch.ones(3))]
    folder = write_weights_atomically(tensors, tmp_path / "v1", torch_dtype("float32"))
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        assert sorted(handle.keys()) == ["model.embed_tokens.weight", "norm.weight"]
        assert torch.equal(handle.get_tensor("model.embed_tokens.weight"), embed)
    assert torch_dtype("auto") is None and torch_dtype("bfloat16") == torch.bfloat16
    with pytest.raises(ValueError, match="'fp8'"):
        torch_dtype("fp8")
