"""The V-Express engine: networks, checkpoint loading, the model folder, the pipeline. Imports nothing of the CLI."""
