"""A stand-in for Slurm's `sbatch`, enough to run a babeltune Slurm script as written on one machine.

It understands --parsable, --array, --dependency=afterok:..., --output (also from #SBATCH lines), --wrap and
a script path; every other option is accepted and ignored. Each job runs detached: the array's tasks all at
once (so they share the run directory as on a cluster), a dependent job only once every job it names has
exited 0. State lives in $FAKE_SLURM: <id>.json (the job) and <id>.rc (its exit status when done). A missing
log folder fails the job, as on Slurm.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SLURM", "/tmp/fake-slurm"))


def parse(args: list[str]) -> dict:
    job = {"array": None, "after": [], "output": None, "wrap": None, "script": None}
    i = 0
    while i < len(args):
        arg = args[i]
        name, _, value = arg.partition("=")
        if name in ("--wrap", "--output", "--array", "--dependency") and not value:
            i, value = i + 1, args[i + 1]
        if name == "--array":
            job["array"] = [n for part in value.split(",") for n in _span(part)]
        elif name == "--dependency":
            job["after"] = value.removeprefix("afterok:").split(":")
        elif name == "--output":
            job["output"] = value
        elif name == "--wrap":
            job["wrap"] = value
        elif not arg.startswith("-"):
            job["script"] = str(Path(arg).resolve())
        i += 1
    if job["output"] is None and job["script"]:
        found = re.search(r"^#SBATCH --output=(\S+)", Path(job["script"]).read_text(), re.M)
        job["output"] = found.group(1) if found else "slurm-%A_%a.out"
    return job


def _span(part: str) -> list[int]:
    first, _, last = part.partition("-")
    return list(range(int(first), int(last or first) + 1))


def submit(args: list[str]) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    job_id = str(len(list(STATE.glob("*.json"))) + 1000)
    (STATE / f"{job_id}.json").write_text(json.dumps(parse(args)))
    subprocess.Popen([sys.executable, __file__, "--run", job_id], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    print(job_id)


def run(job_id: str) -> None:
    job = json.loads((STATE / f"{job_id}.json").read_text())
    while not all((STATE / f"{dep}.rc").exists() for dep in job["after"]):
        time.sleep(0.2)
    if any((STATE / f"{dep}.rc").read_text().strip() != "0" for dep in job["after"]):
        (STATE / f"{job_id}.rc").write_text("DependencyNeverSatisfied")
        return
    procs = []
    for index in job["array"] or [None]:
        log = Path(job["output"].replace("%A", job_id).replace("%a", str(index)).replace("%j", job_id))
        if not log.parent.is_dir():
            (STATE / f"{job_id}.rc").write_text(f"no log folder {log.parent}")
            return
        env = dict(os.environ, SLURM_JOB_ID=job_id)
        if index is not None:
            env |= {"SLURM_ARRAY_JOB_ID": job_id, "SLURM_ARRAY_TASK_ID": str(index)}
        cmd = ["bash", "-c", job["wrap"]] if job["wrap"] else ["bash", job["script"]]
        procs.append(subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT))
    codes = [p.wait() for p in procs]
    (STATE / f"{job_id}.rc").write_text(str(max(codes)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        run(sys.argv[2])
    else:
        submit(sys.argv[1:])
