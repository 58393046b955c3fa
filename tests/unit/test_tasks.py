"""Tasks in process, with a five-line fake stage: keys follow what a task runs with and its inputs' content,
an incomplete task is redone, a done one is left alone, a failure leaves no folder, and two tasks that need
one lock take it in turn."""

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from babeltune.registry import BabeltuneError
from babeltune.settings import setting
from babeltune.tasks import Outcome, Task, execute, from_job_file, lock_path

CALLS: list[str] = []


@dataclass(frozen=True)
class Shout:
    """Upper-cases its input's words (or ``text``); a word in ``fail`` is a failed item."""

    text: str = setting("a b c", "words when there is no input")
    fail: tuple[str, ...] = setting((), "words that fail")
    threads: int = setting(1, "plumbing", affects_result=False)

    def work(self, inputs: dict[str, Path], out_dir: Path) -> Outcome:
        CALLS.append(self.text)
        words = (inputs["words"].read_text() if inputs else self.text).split()
        (out_dir / "out.txt").write_text(" ".join(w.upper() for w in words if w not in self.fail))
        return Outcome(failed=[w for w in words if w in self.fail])

    def locate(self, folder: Path, part: str) -> Path:
        return folder / "out.txt"


def chain(run_dir: Path, first: Shout, second: Shout = Shout()) -> list[Task]:
    a = Task("data", "first", first, run_dir=run_dir)
    return [a, Task("mix", "second", second, {"words": a.output()}, run_dir=run_dir)]


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()


def test_a_key_follows_the_result_fields_and_not_the_plumbing(tmp_path):
    (a, _), (b, _), (c, _) = (chain(tmp_path, job) for job in (Shout(), Shout(threads=8), Shout(text="x")))
    assert a.plan_key == b.plan_key != c.plan_key


def test_done_tasks_are_left_alone_and_a_downstream_task_follows_its_inputs_content(tmp_path):
    tasks = chain(tmp_path, Shout())
    assert [t.status for t in tasks] == ["to do", "waits for data"]
    assert execute(tasks, log=lambda _: None).ran == 2
    assert (tasks[1].out_dir / "out.txt").read_text() == "A B C" and all(t.done for t in tasks)
    assert execute(chain(tmp_path, Shout()), log=lambda _: None).ran == 0 and CALLS == ["a b c", "a b c"]
    # the first task's output changes: the second is redone under a new key; its old folder stays
    changed = chain(tmp_path, Shout(text="a b d"))
    assert execute(changed, log=lambda _: None).ran == 2 and changed[1].out_dir != tasks[1].out_dir
    with pytest.raises(BabeltuneError, match="is not a babeltune job type"):  # job.yaml names only our own
        from_job_file(changed[1].out_dir)


def test_an_incomplete_task_is_recorded_and_redone_by_the_next_run(tmp_path):
    tasks = chain(tmp_path, Shout(fail=("b",)))
    summary = execute(tasks[:1], log=lambda _: None)
    assert summary.incomplete == [(tasks[0], 1)] and tasks[0].status == "incomplete: 1 failed"
    assert tasks[0].record["failures"] == ["b"]
    assert execute(chain(tmp_path, Shout(fail=("b",)))[:1], log=lambda _: None).ran == 1  # retried


def test_a_task_that_raises_leaves_no_folder_and_says_why(tmp_path):
    @dataclass(frozen=True)
    class Broken(Shout):
        def work(self, inputs, out_dir):
            raise ValueError("no words today")

    task = Task("data", "broken", Broken(), run_dir=tmp_path)
    with pytest.raises(ValueError, match="no words today"):
        execute([task], log=lambda _: None)
    assert not task.out_dir.exists() and task.status == "to do"
    assert (
        "ValueError: no words today"
        in (tmp_path / ".failures").joinpath(f"data-{task.out_dir.name}.json").read_text()
    )


def test_two_tasks_with_one_key_run_once_under_one_lock(tmp_path):
    """A task planned twice (the same job and inputs) is one folder and one lock: the second finds it done."""
    first, again = (Task("data", name, Shout(), run_dir=tmp_path) for name in ("one", "two"))
    assert lock_path(first) == lock_path(again)
    lines = []
    assert execute([first, again], log=lines.append).ran == 1 and CALLS == ["a b c"]
    assert replace(first, name="three").done
