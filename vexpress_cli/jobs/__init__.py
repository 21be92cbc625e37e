"""The jobs every front end runs: generate, retarget, extract, inspect, doctor, download."""
