"""A tiny random-weight model in the released layout and synthetic inputs, for the demo and tests."""
