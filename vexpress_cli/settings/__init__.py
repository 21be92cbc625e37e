"""The generation settings schema, presets and the user config."""
