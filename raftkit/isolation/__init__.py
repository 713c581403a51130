"""Nodes in processes of their own: the trust boundary of grading.

``process`` is the trusted side (``Cluster(..., isolation="process")``),
``host`` the node processes and their template, ``wire`` the frames between
them, ``sandbox`` the bubblewrap sandbox around a template, ``uidsandbox``
the weaker one (a user of its own) where bubblewrap cannot make namespaces.
"""
