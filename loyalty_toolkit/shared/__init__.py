"""Rules and views that more than one stage needs, below the stages so that no stage imports another.

``member_rules``: a member record's rules (stage 00 picks its rehearsal subset with them, stage 01
migrates with them); ``identifiers``: finding members by identifier (stages 02 and 03);
``liability``: what members are owed by balance band and expiry month (stages 03 and 05);
``frames``: reading text columns of staged tables the same way everywhere.
"""
