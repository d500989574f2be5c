"""Stage 05, report: the sign-off figures read back from the run (``figures``), the cross-stage
checks (``checks``), and the step the notebook calls (``step``).
"""
