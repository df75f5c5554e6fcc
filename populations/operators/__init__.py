"""Variation operators grouped by family: pure functions with an explicit RNG (DEAP style).

- `real`: simulated binary crossover and polynomial mutation on bounded real vectors.
- `mutation`, `crossover`: tower genome operators (experience entries and fields).
- `hyper`: hyper-parameter genes over a declared space (the accordion species).
"""
