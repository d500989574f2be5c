"""Stage 01, members: read the legacy member export, apply the member rules
(``loyalty_toolkit.shared.member_rules``, shared with stage 00), gate, and write the target's member
import file (``step``).
"""
