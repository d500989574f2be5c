"""Readers for the legacy exports: robust delimited files and the per-source column mapping.

Sources turn files into canonical pandas frames and raise :class:`~loyalty_toolkit.errors.InputError`
(with file, line and column) for anything they cannot read as declared.
"""
