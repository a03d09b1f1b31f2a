"""One module per `sql/<area>.sql`: frozen dataclasses and thin async functions.

Every function takes an asyncpg connection (or pool) first and keyword
arguments after, and costs exactly one round trip.
"""
