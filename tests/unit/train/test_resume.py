"""Resuming training: a torn trainer state is skipped and said."""


def test_a_torn_trainer_state_is_skipped_and_said(tmp_path, capsys):
    from babeltune.train.resume import CHECKPOINT_FILES, last_complete_checkpoint

    for step, state in ((2, '{"global_step": 2}'), (4, '{"global_st')):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in CHECKPOINT_FILES:
            (folder / name).write_text(state if name == "trainer_state.json" else "x")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert "checkpoint-4: unreadable trainer_state.json" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]
