"""The legacy points ledger (Zenoti-style liability export): ``read`` (CSV, encodings, blocks),
``times`` (timestamps to UTC microseconds), ``parse`` (rows to the engine's columns, rejects with
reasons) and ``stream`` (read and parse in blocks, the way stage 03 reads ten million rows).
"""
