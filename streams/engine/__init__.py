"""The stream-processing engine: consumer groups, state stores with changelogs, the worker."""
