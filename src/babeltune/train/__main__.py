"""Entry point of each process a launcher starts: ``python -m babeltune.train JOB.yaml OUT_DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

from babeltune.quiet import quiet_third_party
from babeltune.registry import BabeltuneError
from babeltune.settings import from_dict, load_yaml
from babeltune.train.stage import TrainJob, run


def read_job_file(path: Path) -> tuple[TrainJob, Path]:
    data = load_yaml(Path(path).read_text(encoding="utf-8"))
    return from_dict(TrainJob, data["job"], f"{path}: job"), Path(data["inputs"]["mixture"]["path"])


def main(argv: list[str] | None = None) -> int:
    """Entry point for each process under torchrun / accelerate launch."""
    job_file, out_dir = (argv or sys.argv[1:])[:2]
    quiet_third_party()
    job, mixture = read_job_file(Path(job_file))
    try:
        run(job, mixture, Path(out_dir), launched=True)
    except BabeltuneError as err:
        print(f"babeltune: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
