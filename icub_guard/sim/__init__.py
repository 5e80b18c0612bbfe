"""The simulation, outside the core: the pybullet tabletop, its data sets, simulated teachers, scoring, and
the in-process teaching loop."""
