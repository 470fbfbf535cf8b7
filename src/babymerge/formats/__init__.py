"""File formats shared by several stages, one module per format, each stating its format and its one policy.

They live here, not in a stage folder, because every stage reads them (captions: features, training,
merging, evaluation and the demo; checkpoint folders: merging, conversion and the sweep).
"""
