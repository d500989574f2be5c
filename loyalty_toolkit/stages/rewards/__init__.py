"""Stage 04, rewards: the reward rules and their reason codes (``rules``), validation of catalog,
earned and burned files (``validation``), what goes to Splio in two steps (``splio_import``; the
export, the import day and the checks on the files in ``import_steps``; the local rehearsal of the
masterreward import in ``rehearsal``), and the step the notebook calls (``step``).
"""
