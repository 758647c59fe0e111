"""Roles of the multi-target tracker, one verb each (composed by :mod:`atalaya.fusion.mtt`).

- :mod:`.motion` — ``predict``: constant-velocity motion model, batched over tracks.
- :mod:`.kalman` — ``innovate`` and ``update``: linear Kalman update of position measurements, batched.
- :mod:`.associate` — ``associate``: Mahalanobis gating and global nearest neighbour assignment.
- :mod:`.lifecycle` — ``confirm`` and ``expire``: M-of-N initiation and deletion after misses.

State vectors are ``[x, vx, y, vy]`` (metres, metres per second) in a local
azimuthal equidistant plane; covariances are ``(n, 4, 4)`` stacks.
"""
