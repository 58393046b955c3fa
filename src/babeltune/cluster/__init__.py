"""Running a grid on a Slurm cluster: the site's settings, the submission script, preemption and requeue,
and the status of a run directory across its tasks and jobs."""
