"""Stage 02, mapping: legacy member -> target member id (``matching``), the local rehearsal of the
target's member import (``rehearsal``), and the step the notebook calls (``step``).
"""
