"""Stage 04, rewards: the reward rules and their reason codes (``rules``), validation of catalog,
earned and burned files (``validation``), and the step the notebook calls (``step``).
"""
