"""loyalty_toolkit: staged, gated, reproducible migration of a loyalty program.

The notebooks in ``notebooks/`` narrate each stage; all the logic lives here. Layering (checked by
import-linter, see pyproject.toml): cli -> runner -> stages -> (sources, targets, gates, store,
sample) -> config -> (model, normalize) -> errors.
"""

__version__ = "0.1.0"
