"""Stage 03, transfers: point lots at the cutover (``lots``, ``fallback``), opening balances
(``opening``), unit transfers (``engine``, ``keys``), member slices (``slices``), the reconciliation
(``reconcile``), gate check tables (``checks``), import files (``outputs``), what the notebook shows
(``outcome``, ``view``) and the step the notebook calls (``step``).
"""
