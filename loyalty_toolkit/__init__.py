"""loyalty_toolkit: staged, gated, reproducible migration of a loyalty program.

The notebooks in ``notebooks/`` narrate each stage; all the logic lives here. Layering (checked by
import-linter, see pyproject.toml): cli -> runner -> stages -> (sources, targets, gates, store,
sample) -> config -> (model, normalize) -> errors.
"""

import pandas as _pd

__version__ = "0.1.0"

# pandas 3 backs its text columns with pyarrow when pyarrow is installed (we install it for the
# ledger's CSV reader). The stages' per-row code (phone and email matching, itertuples) runs
# several times slower over pyarrow strings, and the results must not depend on what else is
# installed: text columns stay Python strings, as without pyarrow.
_pd.set_option("mode.string_storage", "python")
