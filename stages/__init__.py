"""The DVC stages of the pipeline (one module each) and their library code in `stages.lib`."""
