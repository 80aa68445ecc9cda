"""The ``deepspark`` command line: ``predict``, ``models`` and more."""
