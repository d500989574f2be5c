"""Writers of the target platforms' import files (Open Loyalty members XML, Splio reward CSVs).

Outputs are deterministic: the same input frames give byte-identical files.
"""
