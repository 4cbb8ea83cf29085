"""The benchmark: a seeded national-scale dataset (``generate``) and the measurements (``run``).

Run it with ``python -m bench all --scale 0.1``; see ``bench/README.md``.
"""
