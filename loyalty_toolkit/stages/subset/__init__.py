"""Stage 00, subset: freeze the legacy exports named in the config (``step``) and, for a rehearsal,
pick a deterministic subset of members that still shows every defect class (``selection``).
"""
