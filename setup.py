"""Package list for setuptools (the metadata is in pyproject.toml).

``notebooks/`` and ``expectations/`` stay at the top of the checkout, where people edit them, and
ship inside the wheel as ``loyalty_toolkit/notebooks`` and ``loyalty_toolkit/expectations``
(``model.notebooks_dir`` finds either), so an installed tool runs without a checkout.
"""

from setuptools import find_namespace_packages, setup

SHIPPED_DATA = {"loyalty_toolkit.notebooks": "notebooks", "loyalty_toolkit.expectations": "expectations"}

setup(packages=[*find_namespace_packages(include=["loyalty_toolkit*"]), *SHIPPED_DATA], package_dir=SHIPPED_DATA)
