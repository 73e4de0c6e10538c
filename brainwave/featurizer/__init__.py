"""The featurizer stage: a catalog network executed by a pluggable backend."""
