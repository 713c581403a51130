# nbgrader configuration for a course that uses raftkit's exercises.
# Copy this file into your nbgrader course directory. With it,
# `nbgrader generate_assignment` writes the same student code as
# `raftkit release solutions/ exercises/`: each region between
# "### BEGIN SOLUTION" and "### END SOLUTION" becomes `raise NotImplementedError`
# (nbgrader's default stub adds a "# YOUR CODE HERE" line and parentheses).
# nbgrader's options: https://nbgrader.readthedocs.io/en/stable/configuration/config_options.html
c = get_config()  # noqa: F821 (nbgrader provides get_config)
c.ClearSolutions.code_stub = {"python": "raise NotImplementedError"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
