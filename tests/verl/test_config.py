"""Every YAML under configs/ composes with verl's own ppo_trainer config and validates; bad values are explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentlightning.verl.config import CONFIG_DIR, compose_config

TOP_LEVEL = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "base")  # base.yaml is only composed
PRESETS = sorted(p.stem for p in (CONFIG_DIR / "preset").glob("*.yaml"))


def test_every_config_file_starts_with_its_run_command() -> None:
    for path in sorted(Path(CONFIG_DIR).rglob("*.yaml")):
        head = path.read_text().splitlines()[:2]
        assert any(line.startswith("# Run: ") for line in head), f"{path} does not start with a '# Run:' comment"


@pytest.mark.parametrize("name", TOP_LEVEL)
@pytest.mark.parametrize("preset", PRESETS)
def test_compose_and_validate(name: str, preset: str) -> None:
    cfg = compose_config(name, [f"preset={preset}"])
    assert cfg.agentlightning.preset == preset
    assert "actor_rollout_ref" in cfg and "algorithm" in cfg  # verl's own config is there
    if preset == "cpu":
        assert cfg.trainer.device == "cpu" and not cfg.actor_rollout_ref.model.use_remove_padding
        assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
        assert Path(cfg.actor_rollout_ref.model.path).name == "SmolLM2-135M-Instruct"
        # fp32 compute (bf16 matmul is a slow fallback on CPUs without native bf16), for actor, ref and critic
        for engine in (cfg.actor_rollout_ref.actor.fsdp_config, cfg.actor_rollout_ref.ref.fsdp_config, cfg.critic.fsdp):
            assert engine.mixed_precision.param_dtype == "fp32"
        assert cfg.algorithm.rollout_correction.bypass_mode  # π_old = the sampler's logprobs
        assert cfg.agentlightning.runner_concurrency > 1
    else:
        actor = cfg.actor_rollout_ref.actor
        assert actor.fsdp_config.param_offload and actor.fsdp_config.optimizer_offload
        # calc_x and the generic config use the preset's model; spider picks the Coder variant for preset=gpu
        assert cfg.actor_rollout_ref.model.path in ("Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-Coder-1.5B-Instruct")
        assert (cfg.data.train_batch_size, cfg.actor_rollout_ref.rollout.n, actor.optim.lr) == (32, 4, 1e-6)


@pytest.mark.parametrize(("overrides", "message"), [
    (["agentlightning.credit_assignment=turn"], "credit_assignment='turn'"),
    (["agentlightning.credit_assignment=rollout_level", "algorithm.adv_estimator=gae"], "outcome estimator"),
    (["agentlightning.overlong=cut"], "overlong='cut'"),
    (["agentlightning.adapter.mode=tree"], "adapter.mode='tree'"),
    (["agentlightning.agent=not_a_module_path"], "module:attribute"),
    (["actor_rollout_ref.model.use_remove_padding=true"], "flash-attn"),
    (["trainer.device=cuda"], "preset=cpu with trainer.device='cuda'"),
    (["data.train_batch_size=6", "actor_rollout_ref.actor.ppo_mini_batch_size=4"], "must divide"),
    (["+agentlightning.bogus=1"], "unknown keys"),
    (["agentlightning.runner_concurrency=0"], "runner_concurrency=0"),
    (["agentlightning.host=0.0.0.0"], "store_token"),
    # wrong types name the field and the type wanted
    (["agentlightning.adapter=5"], r"adapter=5: must be dict"),
    (["agentlightning.rollout_timeout_s=abc"], r"rollout_timeout_s='abc': must be float or null"),
    (["agentlightning.runner_concurrency=1.5"], r"runner_concurrency=1.5: must be int"),
    (["agentlightning.normalize_turns=3"], r"normalize_turns=3: must be bool"),
    (["agentlightning.heartbeat_timeout_s=0"], "heartbeat_timeout_s=0.0"),
    (["agentlightning.max_attempts=0"], "max_attempts=0"),
    (["agentlightning.tasks=nocolon"], "package.module:attribute"),
    (["agentlightning.train_data=/nonexistent.jsonl"], "train_data='/nonexistent.jsonl': no such file"),
    # verl keys this project cannot honour are rejected, not ignored
    (["actor_rollout_ref.rollout.name=sglang"], "rollout.name='sglang'"),
    (["actor_rollout_ref.actor.strategy=megatron"], "strategy='megatron'"),
    (["algorithm.adv_estimator=gae", "algorithm.filter_groups.enable=false", "critic.enable=false"],
     "GAE needs a value model"),
    (["algorithm.adv_estimator=gae", "algorithm.filter_groups.enable=false", "critic.model.path=/no/such/critic"],
     "GAE needs a value model"),
    (["trainer.logger=[bogus]"], "'bogus' is not one of verl's tracking backends"),
    (["data.train_files=tasks.parquet"], "data.train_files='tasks.parquet': this project does not read it"),
    (["data.val_files=val.parquet"], "agentlightning.val_data"),
    (["trainer.default_local_dir=/ckpt"], "agentlightning.output_dir"),
    (["trainer.val_only=true"], "evaluate"),
    (["trainer.resume_mode=resume_path"], "resume_mode='resume_path'"),
    (["trainer.critic_warmup=2"], "critic_warmup=2"),
])
def test_bad_values_are_explained(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        compose_config("agentlightning", overrides)
    assert "Fix" in str(info.value)
