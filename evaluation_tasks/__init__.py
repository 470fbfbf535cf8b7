"""babymerge's lm-eval task YAMLs (installed as ``babymerge.evaluation_tasks``; lm-eval reads them by path)."""
