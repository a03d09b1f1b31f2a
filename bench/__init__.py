"""The benchmark: LockBay's one-query screens against the same screens the old ORM way.

`python -m bench` (or `make bench`); see bench/README.md.
"""
