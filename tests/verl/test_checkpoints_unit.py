"""Finding a run's checkpoints on disk (no model): the latest complete `global_step_N`, and the HF model folder that
evaluation serves, with what/why/fix errors for folders that are not one."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentlightning.verl.algorithm import hf_model_folder, latest_checkpoint


def _step(root: Path, n: int, complete: bool = True, weights: bool = True) -> Path:
    step = root / "checkpoints" / f"global_step_{n}"
    hf = step / "actor" / "huggingface"
    hf.mkdir(parents=True)
    (step / "actor" / "fsdp_config.json").write_text("{}")
    (hf / "config.json").write_text("{}")
    if weights:
        (hf / "model.safetensors").write_bytes(b"")
    if complete:
        (step / "agl_state.json").write_text(f'{{"step": {n}, "cursor": 0}}')
    return step


def test_latest_complete_checkpoint_and_its_hf_folder(tmp_path: Path) -> None:
    _step(tmp_path, 2)
    _step(tmp_path, 10)
    _step(tmp_path, 12, complete=False)  # a save that was interrupted is never picked
    assert latest_checkpoint(tmp_path / "checkpoints") == tmp_path / "checkpoints" / "global_step_10"
    hf = tmp_path / "checkpoints" / "global_step_10" / "actor" / "huggingface"
    assert hf_model_folder(tmp_path) == hf  # a training output folder
    assert hf_model_folder(tmp_path / "checkpoints" / "global_step_10") == hf  # a checkpoint
    assert hf_model_folder(hf) == hf  # the HF folder itself


def test_folders_that_are_not_a_model_are_explained(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not an HF model folder.*Fix"):
        hf_model_folder(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(FileNotFoundError, match="no complete global_step_N.*Fix"):
        hf_model_folder(tmp_path)
    old = _step(tmp_path / "old", 3, weights=False)  # saved before hf_model was in save_contents
    with pytest.raises(FileNotFoundError, match="no weights.*verl.model_merger merge --backend fsdp"):
        hf_model_folder(old)
