"""Nodes in processes of their own: the trust boundary of grading.

``process`` is the trusted side (``Cluster(..., isolation="process")``),
``host`` the node processes, ``wire`` the frames between them.
"""
