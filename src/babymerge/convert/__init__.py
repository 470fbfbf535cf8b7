"""The convert stage (``babymerge convert``): babyllava checkpoints <-> the authors' reference Llava layout.

It lives outside ``babymerge.modeling``, whose files travel inside every checkpoint and so import nothing of
babymerge; the converter needs babymerge's feature-file and checkpoint formats."""
