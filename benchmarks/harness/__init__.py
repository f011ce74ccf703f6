"""What every benchmark needs, once: a sandbox to run in, a measured child process, the run's
step times from its event log, and a report of figures against targets.

* :mod:`~benchmarks.harness.sandbox`: a fresh Dagster home, data directory and MLflow store;
* :mod:`~benchmarks.harness.measure`: run a command, its wall time and peak memory;
* :mod:`~benchmarks.harness.events`: step times from a Dagster event log (kfp.local's tasks,
  which keep no event log, from its output);
* :mod:`~benchmarks.harness.runs`: the graph run three ways (in one process, by the CLI, under
  kfp.local), each measured; :mod:`~benchmarks.harness.child` is what the child process runs;
* :mod:`~benchmarks.harness.models`: the run config a benchmark builds, and the model it chose;
  :mod:`~benchmarks.harness.parity`: kfp.local's chosen model against Dagster's;
* :mod:`~benchmarks.harness.report`: formatted figures, tables, targets and verdicts.

Importing the package imports neither Dagster nor MLflow: a child process pays for what it uses.
"""
