"""The stages: pure logic modules (``members``, ``subset``, ``lots`` ...) and one step module per
stage notebook (``s00_subset``, ``s01_members`` ...) that reads, prepares, gates and commits.

Stage logic is plain functions over data frames; the step modules are the only place a stage
touches the store and the gates, through :class:`~loyalty_toolkit.stages.context.StageContext`.
"""
