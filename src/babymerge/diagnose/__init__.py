"""The diagnose stage: how far apart a text-only and a multimodal model are, as a loss barrier along the
interpolation and as task-vector statistics per layer and tensor group (``babymerge diagnose``).

``config`` is light (no torch), so the command's ``--help`` stays fast; ``run.diagnose`` does the work."""
