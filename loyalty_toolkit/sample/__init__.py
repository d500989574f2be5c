"""A deterministic sample legacy loyalty program with planted, listed defects, for demos and tests."""

from loyalty_toolkit.sample.generator import SampleProgram, generate_sample

__all__ = ["SampleProgram", "generate_sample"]
