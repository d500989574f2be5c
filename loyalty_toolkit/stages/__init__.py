"""The stages, one package each: ``subset``, ``members``, ``mapping``, ``transfers``, ``rewards``,
``report``. Each holds its ``step`` module (what its notebook calls: ``run``, ``gate``, ``commit``),
its pure rules and its views. No stage package imports another: what two stages share is
``context`` (the stage's handle on the run) or a lower layer (``loyalty_toolkit.shared``, sources,
targets, store); a stage reads what an earlier stage produced from the store or the run record.

Stage logic is plain functions over data frames; the step modules are the only place a stage
touches the store and the gates, through :class:`~loyalty_toolkit.stages.context.StageContext`.
"""
