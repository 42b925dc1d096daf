"""devicestream benchmarks: `python -m bench [--quick] [--only STAGE] [--out DIR]`.

Every figure is measured against a baseline in the same run (the machines are noisy: the ratio is
what carries over), with its sizes, repetitions, median and spread, target and verdict. Stages fail
loudly: an error in a stage makes the run exit non-zero, a stage is never skipped silently."""
