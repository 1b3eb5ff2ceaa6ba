"""A pybullet tabletop standing in for the real world: scene, cameras, captures, demos, closed-loop checks."""
