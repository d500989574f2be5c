"""Stage 06, verify: the balances at the target after the transfer import, member by member."""
